"""The attention explorer as an ipywidgets app: sliders and menus for its controls, one image per
view. A control a person changes calls `explorer.set`, which redraws the views and shows their
pictures here (`show`); `explorer.set` from Python moves the controls (`sync`) without redrawing
again. Callbacks read only their arguments and the explorer they close over."""

from __future__ import annotations

from .attention_view import LAYERS
from .explorer import SCALES
from .pixel_pick import attach


class ExplorerWidget:
    """The app of an `AttentionExplorer`: `box` (the VBox a notebook shows; `box.controls` names
    its controls, `box.pick_events` the ipyevents click handler or None) and `images` (per view)."""

    def __init__(self, explorer):
        import ipywidgets as w

        self.explorer, self.syncing = explorer, False  # syncing: the controls are being set to the state
        s, ex = explorer.state, explorer
        frame = w.IntSlider(s["frame"], 0, ex.num_frames - 1, description="frame", continuous_update=False)
        play = w.Play(value=s["frame"], min=0, max=ex.num_frames - 1, interval=800, description="play")
        w.jslink((play, "value"), (frame, "value"))
        ids = [(f"object {i}", i) for i in ex.ids]
        no_queries = not ex.has_queries
        query = w.Dropdown(options=ids, value=s["query"], description="query", disabled=no_queries)
        head = w.Dropdown(options=[("mean", "mean")] + [(f"head {h}", h) for h in range(ex.heads)], value="mean",
                          description="head", disabled=no_queries)
        readout = w.Dropdown(options=ids, value=s["readout"], description="readout of")
        layer = w.Dropdown(options=[(v, k) for k, v in LAYERS.items()], value=s["layer"], description="matrix",
                           disabled=no_queries, layout=w.Layout(width="400px"))
        scale = w.ToggleButtons(options=list(SCALES), value=s["scale"], description="colours")
        row = w.IntSlider(s["pixel"][0], 0, ex.grid[0] - 1, description="pixel row", continuous_update=False)
        col = w.IntSlider(s["pixel"][1], 0, ex.grid[1] - 1, description="pixel col", continuous_update=False)
        status = w.HTML()
        controls = {"frame": frame, "query": query, "head": head, "readout": readout, "layer": layer, "scale": scale}
        for name, control in controls.items():
            control.observe(lambda change, name=name: self.on_change(status, **{name: change["new"]}), "value")
        for control in (row, col):
            control.observe(lambda change: self.on_change(status, pixel=(row.value, col.value)), "value")
        self.images = {view: w.Image(value=ex.images[view], format="png") for view in ex.figures}
        children = [w.HBox([play, frame]), w.HBox([query, head, readout]), w.HBox([layer, scale])]
        if "attention" in ex.figures:
            children.append(self.images["attention"])
        children += [w.HBox([row, col]), self.images["memory"], status]
        self.box = w.VBox(children)
        self.box.controls = {**controls, "play": play, "pixel row": row, "pixel col": col}  # for tests and scripts
        self.box.pick_events = attach(explorer, self.images["memory"])  # click to pick (with ipyevents)

    def on_change(self, status, **changes) -> None:
        """A person changed a control: set it, and say how long the redraw took."""
        if self.syncing:  # a control following `set`, not a person
            return
        seconds = self.explorer.set(**changes)
        status.value = f"<small>redrawn in {1000 * seconds:.0f} ms</small>"

    def show(self, view: str) -> None:
        """Show the explorer's current picture of `view`."""
        self.images[view].value = self.explorer.images[view]

    def sync(self) -> None:
        """Show the state in the controls (after `set` from Python), without redrawing again."""
        controls, s = self.box.controls, self.explorer.state
        values = {name: s[name] for name in ("frame", "query", "head", "readout", "layer", "scale")}
        values.update({"pixel row": s["pixel"][0], "pixel col": s["pixel"][1]})
        self.syncing = True
        try:
            for name, value in values.items():
                if controls[name].value != value:
                    controls[name].value = value
        finally:
            self.syncing = False
