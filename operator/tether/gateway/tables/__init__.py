"""Where the gateway's table documents come from: ConfigMaps (``kube``) or a directory."""
