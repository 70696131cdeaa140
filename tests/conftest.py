"""Shared fixtures: official key list, small networks, a local HTTP server for download tests.

The one conftest.py of the suite: the test modules import helpers from it by name (`from conftest
import ...`), so a second conftest.py below tests/ would shadow it for the modules collected after it.
The tests draw with matplotlib's Agg backend (the tests may choose the backend; the library never does).
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

FIXTURES = Path(__file__).parent / "fixtures"


def official_xmem_shapes(name: str = "xmem_official_state_dict.txt") -> dict[str, tuple[int, ...]]:
    """Key -> shape of the official XMem (or released QMVOS) state dict, in official order."""
    shapes = {}
    for line in (FIXTURES / name).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, shape = line.partition(" ")
        shapes[name] = tuple(int(s) for s in shape.split("x")) if shape.strip() else ()
    return shapes


def random_official_state(seed: int = 0, hidden: bool = True) -> dict[str, torch.Tensor]:
    """A state dict with the official key set and shapes, filled with random values."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in official_xmem_shapes().items():
        if not hidden and name.startswith(("decoder.hidden_update.", "value_encoder.hidden_reinforce.")):
            continue
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(0)
        elif name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(shape, generator=gen)
        else:
            state[name] = 0.05 * torch.randn(shape, generator=gen)
    if not hidden:  # the no-sensory decoder fuses the readout alone (value_dim inputs, not value+hidden)
        for name in ("decoder.fuser.block1.conv1.weight", "decoder.fuser.block1.downsample.weight"):
            state[name] = state[name][:, : 1024 + 512]
    return state


@pytest.fixture(scope="session")
def official_shapes():
    return official_xmem_shapes()


def released_qmvos_shapes() -> dict[str, tuple[int, ...]]:
    return official_xmem_shapes("qmvos_official_state_dict.txt")


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.payload`; honours Range; cuts the first `server.truncate_first` responses in half."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        server = self.server
        server.requests.append(dict(self.headers))
        if self.path != "/" + server.filename:
            self.send_error(404)
            return
        payload = server.payload
        start = 0
        if "Range" in self.headers and server.honour_range:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        else:
            self.send_response(200)
        body = payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.truncate_first > 0:
            server.truncate_first -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture
def http_server():
    """A server on 127.0.0.1; set `.payload`, `.filename`, `.truncate_first`, `.honour_range`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.payload, server.filename, server.truncate_first, server.honour_range = b"", "file.bin", 0, True
    server.requests = []
    server.url = lambda: f"http://127.0.0.1:{server.server_address[1]}/{server.filename}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def small_xmem():
    """An XMem network with its own seeded random initialisation, in eval mode."""
    from qmvos_lab.model import XMem

    torch.manual_seed(0)
    return with_random_heads(XMem()).eval()


def with_random_heads(model):
    """Fresh networks start at logit 0 for every object (zero prediction conv / zero queries), so
    every object ties; give the heads random weights so that untrained networks make distinct,
    input-dependent predictions in tests."""
    with torch.no_grad():
        if hasattr(model.decoder, "pred"):
            model.decoder.pred.reset_parameters()
        if hasattr(model.decoder, "QCIM"):
            torch.nn.init.ones_(model.decoder.QCIM.norm3.weight)
    return model


@pytest.fixture(scope="session")
def xmem_checkpoint(tmp_path_factory, small_xmem):
    path = tmp_path_factory.mktemp("checkpoints") / "xmem-random.pth"
    torch.save(small_xmem.state_dict(), path)
    return path


def moving_discs_clip(num_frames: int, height: int, width: int, num_objects: int, seed: int = 0):
    """Coloured discs moving over a smooth background: frames T x 3 x H x W in [0, 1], labels T x H x W."""
    gen = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    background = torch.stack([0.5 + 0.2 * torch.sin(xs / 17.0), 0.5 + 0.2 * torch.cos(ys / 11.0),
                              0.4 + 0.1 * torch.sin((xs + ys) / 23.0)])
    colours = torch.rand(num_objects, 3, generator=gen)
    start = torch.rand(num_objects, 2, generator=gen) * torch.tensor([height, width]) * 0.6 + 0.15 * min(height, width)
    velocity = (torch.rand(num_objects, 2, generator=gen) - 0.5) * 16
    radius = min(height, width) / 8
    frames, labels = [], []
    for t in range(num_frames):
        frame, label = background.clone(), torch.zeros(height, width, dtype=torch.long)
        for i in range(num_objects):
            cy, cx = (start[i] + velocity[i] * t).tolist()
            inside = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius ** 2
            frame[:, inside] = colours[i, :, None]
            label[inside] = i + 1
        frames.append(frame)
        labels.append(label)
    return torch.stack(frames), torch.stack(labels)


def make_video(root: Path, num_frames: int = 8, height: int = 48, width: int = 64, late_frame: int = 4):
    """A generated clip on disk: JPEG frames, and palette masks with non-contiguous ids (4, 2 on the
    first frame; 7 entering at `late_frame`). Returns (frames dir, masks dir, label maps)."""
    import numpy as np
    from PIL import Image

    from qmvos_lab.data.masks import write_label_map

    frames, labels = moving_discs_clip(num_frames, height, width, num_objects=3, seed=1)
    labels = labels.numpy().astype(np.uint8)
    labels = np.select([labels == 1, labels == 2, labels == 3], [4, 2, 7], 0).astype(np.uint8)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    for t in range(num_frames):
        image = (frames[t].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(image).save(root / "frames" / f"{t:05d}.jpg", quality=95)
    first = np.where(labels[0] == 7, 0, labels[0]).astype(np.uint8)
    write_label_map(root / "masks" / "00000.png", first)
    write_label_map(root / "masks" / f"{late_frame:05d}.png", np.where(labels[late_frame] == 7, 7, 0).astype(np.uint8))
    return root / "frames", root / "masks", labels
