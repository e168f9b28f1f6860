"""`--png FILE`: who owns which keys, before and after (matplotlib, extra ``tether[png]``).

Left, the key space in the table's own geometry, coloured by pod (one colour per pod in both
tables):
- ring: the 2^64 hash ring as concentric bands, before (inner), after (middle), and an outer
  band red where the owner changed;
- Maglev: every slot as one pixel (256 per row), before, after, and the moved slots in red.
Right, the flows: old pods' shares stacked on the left, new pods' on the right, one band per
transition-matrix cell; moved keys in red. Tables of different geometry (an algorithm or size
switch) show only the flows.
"""

from __future__ import annotations

from bisect import bisect_left

from tether.cli.watch_render import short_names
from tether.models import table as t
from tether.reconcile.tables import Lookup
from tether.reconcile.transition import NOBODY, SPACE_64, Transition

ROW = 64  # Maglev slots per raster row
SHOWN = 64 * 48  # the first 3,072 slots: each stays visible (the full table is a blur)
MOVED = "#d62728"
KEPT = "#e8e8e8"


def require() -> None:
    """ImportError with the fix when matplotlib (extra ``tether[png]``) is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("--png needs matplotlib: pip install 'tether[png]'") from None


def _colours(keys: list[str]):
    import matplotlib

    # tab10 and tab20 without their reds: red means "moved"
    name, reds = ("tab20", (6, 7)) if len(keys) > 9 else ("tab10", (3,))
    cmap = matplotlib.colormaps[name]
    palette = [cmap(i) for i in range(cmap.N) if i not in reds]
    return {k: palette[i % len(palette)] for i, k in enumerate(keys)} | {NOBODY: (1, 1, 1, 1)}


def _ring_intervals(a: Lookup | None, b: Lookup):
    """(start, end, old key, new key) over the ring, consecutive equal pairs merged."""
    points = sorted(set(b.hashes) | (set(a.hashes) if a else set()))
    out, prev = [], points[-1] - SPACE_64

    def owner(look: Lookup | None, p: int) -> str:
        if look is None:
            return NOBODY
        i = bisect_left(look.hashes, p)
        return look.keys[look.indices[i if i < len(look.hashes) else 0]]

    for p in points:
        pair = (owner(a, p), owner(b, p))
        if out and out[-1][2:] == pair:
            out[-1] = (out[-1][0], p, *pair)
        else:
            out.append((prev, p, *pair))
        prev = p
    return out


def _merged(intervals, colour) -> list[tuple[int, int, object]]:
    """Consecutive intervals of one band with the same colour, as one arc each."""
    out: list[tuple[int, int, object]] = []
    for start, end, old, new in intervals:
        c = colour(old, new)
        if out and out[-1][2] == c:
            out[-1] = (out[-1][0], end, c)
        else:
            out.append((start, end, c))
    return out


def _draw_ring(ax, a: Lookup | None, b: Lookup, colours) -> None:
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Wedge

    intervals = _ring_intervals(a, b)
    bands = [((0.70, 0.86), lambda old, new: colours[new])]
    if a is not None:
        bands += [
            ((0.50, 0.66), lambda old, new: colours[old]),
            ((0.90, 0.98), lambda old, new: MOVED if old not in (new, NOBODY) else KEPT),
        ]
    patches, faces = [], []
    for (inner, outer), colour in bands:
        for start, end, face in _merged(intervals, colour):
            t1, t2 = 90 - 360 * end / SPACE_64, 90 - 360 * start / SPACE_64  # clockwise from 12
            patches.append(Wedge((0, 0), outer, t1, t2, width=outer - inner))
            faces.append(face)
    ax.add_collection(PatchCollection(patches, facecolors=faces, linewidths=0, antialiased=False))
    ax.set_xlim(-1, 1), ax.set_ylim(-1, 1), ax.set_aspect("equal"), ax.axis("off")
    ax.set_title("ring: before (inner), after, moved (outer)", fontsize=9)


def _raster(slots, keys: list[str], index: dict[str, int], moved_from=None):
    import numpy as np

    slots = slots[:SHOWN]
    rows = -(-len(slots) // ROW)
    img = np.full(rows * ROW, -1.0)
    for i, s in enumerate(slots):
        k = keys[s]
        if moved_from is None:
            img[i] = index[k]
        else:
            img[i] = len(index) if k != moved_from[i] else len(index) + 1
    return np.ma.masked_less(img.reshape(rows, ROW), 0)


def _draw_maglev(axes, a: Lookup | None, b: Lookup, order: list[str], colours) -> None:
    from matplotlib.colors import ListedColormap

    index = {k: i for i, k in enumerate(order)}
    cmap = ListedColormap([colours[k] for k in order] + [MOVED, KEPT]).with_extremes(bad="white")
    vmax = len(order) + 1
    panels = [("after", b.slots, b.keys, None)]
    if a is not None:
        old = [a.keys[s] for s in a.slots]
        panels = [("before", a.slots, a.keys, None), *panels, ("moved", b.slots, b.keys, old)]
    for ax, (title, slots, keys, moved_from) in zip(axes, panels, strict=False):
        ax.imshow(
            _raster(slots, keys, index, moved_from),
            cmap=cmap,
            vmin=0,
            vmax=vmax,
            interpolation="nearest",
            aspect="auto",
        )
        shown = min(SHOWN, len(slots))
        ax.set_title(f"{title}: slots 0–{shown - 1} of {len(slots)}", fontsize=9)
        ax.axis("off")


def _draw_flows(ax, tr: Transition | None, after: dict[str, float], names, colours) -> None:
    from matplotlib.patches import Polygon, Rectangle

    ax.axis("off"), ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    cells = tr.cells if tr else {(NOBODY, k): v for k, v in after.items()}
    olds = sorted({a for a, _ in cells}, key=lambda k: names.get(k, k))
    news = sorted({b for _, b in cells}, key=lambda k: names.get(k, k))
    left = {a: sum(v for (x, _), v in cells.items() if x == a) for a in olds}
    right = {b: sum(v for (_, y), v in cells.items() if y == b) for b in news}
    y0, ystart = {}, 0.0
    for a in olds:
        y0[a] = 1 - ystart
        ax.add_patch(Rectangle((0.05, 1 - ystart - left[a]), 0.08, left[a], color=colours[a]))
        ax.text(
            0.04, 1 - ystart - left[a] / 2, names.get(a, a), ha="right", va="center", fontsize=7
        )
        ystart += left[a]
    y1, yend = {}, 0.0
    for b in news:
        y1[b] = 1 - yend
        ax.add_patch(Rectangle((0.87, 1 - yend - right[b]), 0.08, right[b], color=colours[b]))
        ax.text(0.96, 1 - yend - right[b] / 2, names.get(b, b), ha="left", va="center", fontsize=7)
        yend += right[b]
    for (a, b), v in sorted(
        cells.items(), key=lambda c: (olds.index(c[0][0]), news.index(c[0][1]))
    ):
        top_l, top_r = y0[a], y1[b]
        moved = a != b and a != NOBODY
        ax.add_patch(
            Polygon(
                [(0.13, top_l), (0.87, top_r), (0.87, top_r - v), (0.13, top_l - v)],
                color=MOVED if moved else colours[b],
                alpha=0.75 if moved else 0.3,
                linewidth=0,
            )
        )
        y0[a], y1[b] = top_l - v, top_r - v
    ax.set_title("keys: old pod → new pod (moved in red)", fontsize=9)


def draw(
    before: t.TableDocument | None,
    after: t.TableDocument,
    tr: Transition | None,
    shares_after: dict[str, float],
    title: str,
    path: str,
) -> None:
    """Write the PNG of one change (``before`` None: the current ownership only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = Lookup(before) if before is not None else None
    if a is not None and a.empty:  # nothing was owned before: draw the new table alone
        a = before = None
    b = Lookup(after)
    names = {e.hash_key: e.pod or e.hash_key for d in (before, after) if d for e in d.endpoints}
    names, prefix = short_names(names)
    if prefix:
        title += f"  (pods {prefix}…)"
    order = sorted({*names}, key=lambda k: names[k])
    colours = _colours(order)
    same_maglev = b.slots is not None and (
        a is None or (a.slots is not None and len(a.slots) == len(b.slots))
    )
    same_ring = (
        b.hashes is not None
        and (a is None or a.hashes is not None)
        and after.table.format == "ring"
    )
    if same_maglev:
        n = 3 if a is not None else 1
        fig, axes = plt.subplots(1, n + 1, figsize=(3.2 * n + 4, 3.6), width_ratios=[1] * n + [1.6])
        _draw_maglev(axes[:n], a, b, order, colours)
    elif same_ring:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), width_ratios=[1, 1.3])
        _draw_ring(axes[0], a, b, colours)
    else:
        fig, axes = plt.subplots(1, 1, figsize=(6, 4.2))
        axes = [axes]
    _draw_flows(axes[-1], tr, shares_after, names, colours)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def draw_update(u, path: str) -> None:
    """The picture of a watch update: everything that moved since the watch's first table
    (a scale is often several table writes), or the current ownership alone."""
    doc = u.view.doc
    if doc.policy.type != "consistentHash" or Lookup(doc).empty:
        return
    tr = u.since_start
    before = u.first.doc if tr is not None else None
    title = f"{doc.service.name}.{doc.service.namespace}:{doc.service.port} {doc.policy.algorithm}"
    if tr is not None:
        title += (
            f": {u.first.ready}→{u.view.ready} pods, {100 * tr.moved:.1f} % of keys moved"
            f" (optimum {100 * tr.optimum:.1f} %)"
        )
    draw(before, doc, tr, u.view.shares, title, path)
