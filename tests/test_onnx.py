"""ONNX export: the graph's outputs match PyTorch's, a .onnx file is a MODEL for colorize, bad files get one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tintline.checkpoint import CheckpointError, save_generator
from tintline.cli import main
from tintline.inference import Colorizer
from tintline.models import create_generator
from tintline.onnx_model import OnnxNet, export_onnx

pytest.importorskip("onnxruntime")

ARGS = {"in_channels": 9, "base": 8, "depth": 4, "max_width": 16, "norm": "instance", "blend": "multiply",
        "classes": 6}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    g = create_generator("unet", **ARGS)
    g.classes.palette.copy_(torch.tensor([(100.0, 0, 0), (50, 60, 40), (30, 10, -50), (70, -40, 50), (20, 0, 0),
                                          (80, 10, 10)]))
    path = tmp_path_factory.mktemp("m") / "tiny.safetensors"
    save_generator(g, path, {"generator": {"name": "unet", "args": ARGS}, "hint_encoding": "region",
                             "image_size": 128})
    return path


def test_onnx_outputs_match_pytorch_at_any_size(model, tmp_path):
    from tintline.checkpoint import load_generator

    onnx_path = export_onnx(model, tmp_path / "tiny.onnx")
    net, _ = load_generator(model)
    ort = OnnxNet(onnx_path)
    assert ort.multiple == net.multiple and ort.blend == "multiply"
    assert torch.equal(ort.classes.palette, net.classes.palette)
    for h, w in ((64, 64), (128, 208)):  # dynamic height and width, not only the traced size
        x = torch.rand(2, 9, h, w) * 2 - 1
        with torch.no_grad():
            fill, logits = net.fill_and_classes(x)
        fill_o, logits_o = ort.fill_and_classes(x)
        assert fill_o.shape == fill.shape and logits_o.shape == logits.shape
        assert (fill_o - fill).abs().max() < 1e-4 and (logits_o - logits).abs().max() < 1e-3


def test_an_onnx_file_is_a_model_for_colorize(model, tmp_path):
    line = np.full((150, 200), 255, np.uint8)
    line[20:22, 10:190] = 0
    line[120:122, 10:190] = 0
    line[20:122, 10:12] = 0
    line[20:122, 188:190] = 0
    Image.fromarray(line).save(tmp_path / "in.png")
    onnx_path = tmp_path / "tiny.onnx"
    assert main(["export", str(model), str(onnx_path)]) == 0
    a = Colorizer(model).colorize_lines(line).astype(int)
    b = Colorizer(onnx_path).colorize_lines(line).astype(int)
    assert np.abs(a - b).max() <= 2
    assert main(["colorize", str(onnx_path), str(tmp_path / "in.png"), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "in.png").is_file()


def test_bad_onnx_files_get_one_line_errors(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(CheckpointError, match="not a loadable ONNX model"):
        Colorizer(junk)
    node = helper.make_node("Identity", ["input"], ["fill"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 5, 8, 8])],
                              [helper.make_tensor_value_info("fill", TensorProto.FLOAT, [1, 5, 8, 8])])
    bare = tmp_path / "bare.onnx"
    onnx.save(helper.make_model(graph), str(bare))
    with pytest.raises(CheckpointError, match="without tintline metadata"):
        Colorizer(bare)
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(tmp_path / "in.png")
    assert main(["colorize", str(junk), str(tmp_path / "in.png"), "-o", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ONNX" in err[0]
