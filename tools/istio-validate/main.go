// Command istio-validate runs Istio's own validating webhook on DestinationRule documents.
//
// It reads YAML documents (files named on the command line, or stdin), wraps each one in an
// AdmissionReview (operation CREATE) and hands it to the webhook handler istiod serves
// (istio.io/istio/pkg/webhooks/validation/server), with the schemas istiod registers. For every
// document it prints one JSON line: {"index": N, "allowed": bool, "message": "...",
// "warnings": [...]}. "message" is the webhook's answer verbatim ("configuration is invalid:
// ...", "error decoding configuration: ...").
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/log"
	"istio.io/istio/pkg/webhooks/validation/server"
)

type verdict struct {
	Index    int      `json:"index"`
	Allowed  bool     `json:"allowed"`
	Message  string   `json:"message"`
	Warnings []string `json:"warnings"`
}

func review(raw []byte) ([]byte, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(raw, &head)
	gv, _ := schema.ParseGroupVersion(head.APIVersion)
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "istio-validate",
			Kind:      metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: head.Kind},
			Resource:  metav1.GroupVersionResource{Group: gv.Group, Version: gv.Version, Resource: "destinationrules"},
			Name:      head.Metadata.Name,
			Namespace: head.Metadata.Namespace,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	return json.Marshal(ar)
}

func judge(mux *http.ServeMux, index int, raw []byte) (verdict, error) {
	body, err := review(raw)
	if err != nil {
		return verdict{}, err
	}
	req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		return verdict{}, fmt.Errorf("document %d: webhook answered %d %q", index, rec.Code, rec.Body.String())
	}
	v := verdict{Index: index, Allowed: out.Response.Allowed, Warnings: out.Response.Warnings}
	if out.Response.Result != nil {
		v.Message = out.Response.Result.Message
	}
	if v.Warnings == nil {
		v.Warnings = []string{}
	}
	return v, nil
}

func documents(r io.Reader) ([][]byte, error) {
	var docs [][]byte
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for {
		doc, err := reader.Read()
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 || string(bytes.TrimSpace(doc)) == "---" {
			continue
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if string(js) == "null" {
			continue
		}
		docs = append(docs, js)
	}
}

func main() {
	for _, scope := range log.Scopes() {
		scope.SetOutputLevel(log.NoneLevel)
	}
	mux := http.NewServeMux()
	if _, err := server.New(server.Options{
		Schemas:      collections.PilotGatewayAPI(),
		DomainSuffix: "cluster.local",
		Mux:          mux,
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var inputs []io.Reader
	for _, name := range os.Args[1:] {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer f.Close()
		inputs = append(inputs, f)
	}
	if len(inputs) == 0 {
		inputs = append(inputs, os.Stdin)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	index := 0
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for _, in := range inputs {
		docs, err := documents(in)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for _, raw := range docs {
			v, err := judge(mux, index, raw)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			_ = enc.Encode(v)
			index++
		}
	}
}
