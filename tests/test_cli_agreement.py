"""The command-line programs agree with each other and say what they mean:
no abbreviated options, --device everywhere, help that does not misstate a
switch's default, evaluate and classify taking the same defaults from a file,
summary reading model files with training's defaults, messages that name the
real problem, and output files with the mode the user's umask gives."""
import os
import re

import numpy as np
import pytest
from PIL import Image

from minivgg import summary
from minivgg.checkpoint import save_checkpoint
from minivgg.cli import classify as classify_cli
from minivgg.cli import evaluate as evaluate_cli
from minivgg.cli import export as export_cli
from minivgg.cli import train as train_cli
from minivgg.io import WeightsError, inspect_weights, load_model, save_weights
from minivgg.models import vgg
from minivgg.train import Recipe, Trainer

from conftest import photo, safetensors_or_skip, torch_or_skip


def tiny(classes=3, seed=0):
    return vgg("A", num_classes=classes, input_size=32, fc_width=16, width_mult=0.125,
               init="kaiming", seed=seed)


def folder(root, classes=("cat", "dog", "emu"), n=2, side=40):
    for split in ("train", "val"):
        for i, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True)
            for j in range(n):
                Image.fromarray(photo(side, side + 4, seed=10 * i + j)).save(d / f"{j}.jpg")
    return root


def exit_code(fn, argv):
    with pytest.raises(SystemExit) as e:
        fn(argv)
    return e.value.code


def test_switches_do_not_show_a_default_that_reads_as_the_opposite():
    text = train_cli.make_parser([]).format_help()
    assert "(default: True)" not in text and "(default: False)" not in text
    flat = " ".join(text.split())
    assert re.search(r"--release-freed-memory let the C library .*?\(by default the process "
                     r"keeps it", flat)
    assert "(default: 0.01)" in flat and "(default: 32:40)" in flat  # valued options still do


@pytest.mark.parametrize("program, argv", [
    # (--device tpu: were the abbreviation taken, the run would stop at once, not train)
    (train_cli.main, ["--device", "tpu", "--epoch", "1"]),
    (train_cli.main, ["--device", "tpu", "--prof", "paper"]),
    (evaluate_cli.main, ["--checkpoint", "x.npz", "--scale", "256"]),
    (classify_cli.main, ["x.jpg", "--weights", "x.npz", "--top", "3"]),
    (summary.main, ["--width", "0.5"]),
])
def test_abbreviated_options_are_refused(program, argv, capsys):
    assert exit_code(program, argv) == 2
    assert "unrecognized arguments: " + argv[-2] in capsys.readouterr().err


def test_every_program_that_runs_a_model_takes_device(tmp_path, capsys):
    for make in (lambda: train_cli.make_parser([]), evaluate_cli.make_parser,
                 classify_cli.make_parser):
        text = make().format_help()
        assert "--device DEVICE" in text and "--tf32" in text and "emu" in text
    safetensors_or_skip()
    path = save_weights(tiny(), tmp_path / "w.safetensors", classes=["a", "b", "c"])
    Image.fromarray(photo(40, 40)).save(tmp_path / "x.png")
    args = [str(tmp_path / "x.png"), "--weights", str(path), "--protocol", "single"]
    assert exit_code(classify_cli.main, args + ["--device", "tpu"]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err
    [(_, top)] = classify_cli.main(args + ["--device", "cpu"])
    assert sorted(n for n, _ in top) == ["a", "b", "c"]


def test_classify_skips_an_unreadable_image_among_several_and_stops_when_none_reads(tmp_path,
                                                                                   capsys):
    safetensors_or_skip()
    path = save_weights(tiny(), tmp_path / "w.safetensors")
    good = tmp_path / "x.png"
    Image.fromarray(photo(40, 40)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"shopping list")
    whole = tmp_path / "y.jpg"
    Image.fromarray(photo(48, 40, seed=3)).save(whole)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[:300])  # the header reads, the pixels do not
    capsys.readouterr()
    results, skipped = classify_cli.run([str(bad), str(good), str(tmp_path / "gone.jpg"),
                                         str(cut), "--weights", str(path)])
    err = capsys.readouterr().err
    assert [p for p, _ in results] == [str(good)]
    assert skipped == [str(bad), str(tmp_path / "gone.jpg"), str(cut)]
    assert f"warning: skipping {tmp_path / 'gone.jpg'}: no such file" in err
    assert "classified 1 of 4 images; skipped 3" in err
    assert classify_cli.console([str(good), str(bad), "--weights", str(path)]) == 1
    assert exit_code(classify_cli.main, [str(bad), str(tmp_path / "gone.jpg"),
                                         "--weights", str(path)]) == 2
    assert "is not a readable image" in capsys.readouterr().err.splitlines()[-1]
    assert exit_code(classify_cli.main, [str(cut), "--weights", str(path)]) == 2


def test_evaluate_and_classify_give_foreign_weights_the_same_test_scales(tmp_path, capsys):
    st = safetensors_or_skip()
    model = tiny()
    st.save_file(model.state_dict(), str(tmp_path / "tv.safetensors"))  # no metadata
    root = folder(tmp_path / "data")
    for protocol, qs in (("single", "37"), ("dense", "37,55,73")):
        rep = evaluate_cli.main(["--checkpoint", str(tmp_path / "tv.safetensors"),
                                 "--data", f"imagefolder:{root}", "--protocol", protocol,
                                 "--no-progress"])
        assert rep.rows[0].scales == qs and len(rep.labels) == 6
        out = capsys.readouterr().out
        assert f"test scales Q = {qs} (the file records no training scale" in out
        classify_cli.main([str(root / "val" / "cat" / "0.jpg"), "--weights",
                           str(tmp_path / "tv.safetensors"), "--protocol", protocol])
        assert f"test scales Q = {qs} (the file records no training scale" in \
            capsys.readouterr().out
    # A file that records no data set needs --data, and says so.
    assert exit_code(evaluate_cli.main, ["--checkpoint", str(tmp_path / "tv.safetensors")]) == 2
    assert "records no data set to evaluate on (only training checkpoints do); give --data " \
           "imagefolder:DIR" in capsys.readouterr().err


def test_evaluate_takes_the_data_set_a_run_recorded(tmp_path, capsys, monkeypatch):
    root = folder(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    r = Recipe(data="imagefolder:data", crop=32, scale="36", width_mult=0.125, fc_width=16,
               batch_size=4, epochs=1, max_steps=1, out="run", progress=False, threads=1)
    Trainer(r, log=lambda *_: None).run()
    rep = evaluate_cli.main(["--checkpoint", "run", "--no-progress", "--protocol", "single"])
    assert rep.classes == ["cat", "dog", "emu"] and len(rep.labels) == 6
    assert "data: imagefolder:data (data/val), 6 images (recorded in run/last.npz)" in \
        capsys.readouterr().out
    monkeypatch.chdir(tmp_path / "data/val")  # the relative path is found through the record
    rep = evaluate_cli.main(["--checkpoint", "../../run", "--no-progress", "--protocol",
                             "single"])
    assert len(rep.labels) == 6
    assert f"data: imagefolder:{root} ({root / 'val'}), 6 images" in capsys.readouterr().out
    os.rename(root, tmp_path / "moved")
    assert exit_code(evaluate_cli.main, ["--checkpoint", "../../run", "--protocol",
                                         "single"]) == 2
    assert (f"was trained on --data imagefolder:data, and '{root}' is not a directory here; "
            f"give --data imagefolder:DIR") in capsys.readouterr().err


def test_training_on_one_split_folder_suggests_the_root_without_split(tmp_path):
    root = folder(tmp_path / "data")
    with pytest.raises(FileNotFoundError) as e:
        Trainer(Recipe(data=f"imagefolder:{root / 'train'}", out=str(tmp_path / "o"),
                       progress=False)).run()
    msg = str(e.value)
    assert f"use imagefolder:{root} (training reads its train/" in msg and "--split" not in msg
    # Evaluation has --split, and suggests it.
    assert exit_code(evaluate_cli.main, ["--checkpoint", "x.npz", "--data",
                                         f"imagefolder:{root / 'val'}"]) == 2


def test_a_missing_file_is_reported_missing_whatever_its_name(tmp_path, capsys):
    for name in ("runs/nope", "nope.pth", "nope"):
        with pytest.raises(WeightsError, match=f"weights file '.*{name}' does not exist$"):
            load_model(tmp_path / name)
    assert exit_code(evaluate_cli.main, ["--checkpoint", str(tmp_path / "runs" / "nope")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "extension" not in err
    (tmp_path / "noext").write_bytes(b"x")
    with pytest.raises(WeightsError, match="unknown extension"):
        load_model(tmp_path / "noext")


def test_a_pickled_model_gets_one_readable_line_pointing_to_its_state_dict(tmp_path):
    torch = torch_or_skip()
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), str(tmp_path / "whole.pth"))
    with pytest.raises(WeightsError) as e:
        load_model(tmp_path / "whole.pth")
    msg = str(e.value)
    assert "\x1b" not in msg and "\n" not in msg
    assert "holds a pickled Python object (torch.nn.modules.container.Sequential)" in msg
    assert "torch.save(model.state_dict(), 'weights.pth')" in msg
    (tmp_path / "junk.pth").write_bytes(b"\x80\x02" + b"z" * 1000)
    with pytest.raises(WeightsError, match=r"truncated, corrupt, or not a plain PyTorch state "
                                           r"dict \(\w+: .*\)$"):
        load_model(tmp_path / "junk.pth")


def test_output_files_get_the_mode_of_the_umask(tmp_path):
    safetensors_or_skip()
    torch_or_skip()
    old = os.umask(0o027)
    try:
        model = tiny()
        written = [save_weights(model, tmp_path / f"w.{ext}")
                   for ext in ("safetensors", "pth", "npz")]
        try:
            import onnx  # noqa: F401
        except ImportError:
            pass
        else:
            written.append(model.export_onnx(str(tmp_path / "w.onnx")))
        r = Recipe(train_size=16, val_size=8, width_mult=0.125, fc_width=16, batch_size=8,
                   epochs=1, out=str(tmp_path / "run"), progress=False, threads=1)
        Trainer(r, log=lambda *_: None).run()
        written += [os.path.join(r.out, f) for f in ("last.npz", "best.npz", "metrics.jsonl",
                                                     "recipe.json", "mean_rgb.json")]
    finally:
        os.umask(old)
    modes = {os.path.basename(str(p)): oct(os.stat(p).st_mode & 0o777) for p in written}
    assert set(modes.values()) == {"0o640"}, modes


def test_summary_defaults_are_the_training_defaults(capsys):
    r = Recipe()
    model = vgg(r.cfg, num_classes=10, fc_width=r.resolved_fc_width(), input_size=r.crop,
                width_mult=r.width_mult)
    assert summary.main([]) == 0
    out = capsys.readouterr().out
    assert f"VGG-A: {model.num_parameters():,} parameters (0.6 M)" in out
    assert "per 32x32 image" in out and "Table 2" not in out
    assert summary.main(["--profile", "paper", "--width-mult", "0.5"]) == 0
    assert "Table 2" not in capsys.readouterr().out  # not the paper's model
    assert summary.main(["--profile", "paper"]) == 0
    assert "(132.9 M; Table 2: 133 M)" in capsys.readouterr().out


def test_summary_reads_the_model_of_a_file(tmp_path, capsys):
    st = safetensors_or_skip()
    torch = torch_or_skip()
    model = vgg("D", num_classes=7, input_size=64, fc_width=32, width_mult=0.125)
    files = [save_checkpoint(tmp_path / "ck.npz", model, {"classes": list("abcdefg")}),
             str(save_weights(model, tmp_path / "w.pth", layout="timm"))]
    st.save_file(model.state_dict(), str(tmp_path / "tv.safetensors"))
    files.append(str(tmp_path / "tv.safetensors"))
    torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in model.state_dict().items()}},
               str(tmp_path / "wrapped.pt"))
    files.append(str(tmp_path / "wrapped.pt"))
    for path in files:
        assert summary.main([str(path)]) == 0, path
        out = capsys.readouterr().out
        assert out.startswith(f"{path} (") and "VGG-D, widths x0.125, FC 32, 64x64 input, " \
                                                 "7 classes" in out.splitlines()[0]
        assert f"VGG-D: {model.num_parameters():,} parameters" in out and "conv5_3" in out
        assert inspect_weights(path).config["num_classes"] == 7
    assert summary.main([files[0], "--cfg", "A"]) == 2
    assert "--cfg: the model comes from" in capsys.readouterr().err
    assert summary.main([str(tmp_path / "missing.pth")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_export_writes_each_format_and_each_reads_back_with_nothing_repeated(tmp_path, capsys):
    st = safetensors_or_skip()
    torch_or_skip()
    model = tiny(seed=4)
    meta = {"classes": ["a", "b", "c"], "mean_rgb": [0.4, 0.5, 0.6],
            "train": {"scale": [32, 40], "crop": 32}}
    ck = str(save_checkpoint(tmp_path / "ck.npz", model, meta))
    source = load_model(ck)
    for name in ("w.safetensors", "w.pth", "w.npz", "timm.safetensors"):
        layout = ["--layout", "timm"] if name.startswith("timm") else []
        assert export_cli.main([ck, str(tmp_path / name)] + layout) == 0
        assert capsys.readouterr().out.startswith(f"wrote {tmp_path / name} (")
        w = load_model(tmp_path / name)
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(w.model.state_dict()[k], v, err_msg=f"{name} {k}")
        if name.endswith(".pth"):  # a plain state dict: the defaults for foreign weights
            assert w.preprocess_origin == "default" and w.classes is None
        else:
            assert w.preprocess == source.preprocess and w.classes == ["a", "b", "c"]
            assert w.train_scale == [32, 40]
        assert w.layout == ("timm" if layout else "torchvision")
    with st.safe_open(str(tmp_path / "timm.safetensors"), "np") as f:
        assert "head.fc.weight" in f.keys() and "classifier.6.weight" not in f.keys()
    img = tmp_path / "x.png"
    Image.fromarray(photo(40, 44)).save(img)
    assert classify_cli.main([str(img), "--weights", str(tmp_path / "w.safetensors")]) == \
        classify_cli.main([str(img), "--weights", ck])
    before = sorted(os.listdir(tmp_path))
    for bad, message in ((["out.bin"], "unknown extension '.bin'"),
                         (["o.onnx", "--input-size", "64"], "give --dense too"),
                         (["o.safetensors", "--dense"], "are for .onnx files"),
                         (["o.npz", "--layout", "timm"], "minivgg checkpoints")):
        assert exit_code(export_cli.main, [ck, str(tmp_path / bad[0])] + bad[1:]) == 2
        assert message in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == before


def test_export_to_onnx_states_the_inputs_it_needs(tmp_path, capsys):
    onnx = pytest.importorskip("onnx", reason="the onnx package is not installed; "
                                              "pip install onnx")
    ck = str(save_checkpoint(tmp_path / "ck.npz", tiny(),
                             {"classes": ["a", "b", "c"], "mean_rgb": [0.4, 0.5, 0.6]}))
    assert export_cli.main([ck, str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "ONNX input (N, 3, 32, 32) -> logits (N, 3), images normalised as minivgg: RGB, " \
           "[0, 1] pixel units, minus [0.4, 0.5, 0.6]" in out
    assert export_cli.main([ck, str(tmp_path / "d.onnx"), "--dense", "--input-size", "64"]) == 0
    assert "(N, 3, 64, 64) -> scores (N, 3, OH, OW)" in capsys.readouterr().out
    for name, out_name in (("m.onnx", "logits"), ("d.onnx", "scores")):
        proto = onnx.load(str(tmp_path / name))
        onnx.checker.check_model(proto)
        assert proto.graph.output[0].name == out_name


def _documented(pattern):
    """argv of every documented command matching ``pattern`` (a regex whose
    group 1 is the arguments) in the README, docs/, examples/ and minivgg/cli/."""
    import glob
    import shlex
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    files = [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs",
                                                                              "*.md")))
    files += sorted(glob.glob(os.path.join(root, "examples", "*.py")))
    files += sorted(glob.glob(os.path.join(root, "minivgg", "cli", "*.py")))
    found = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read().replace("\\\\\n", " ").replace("\\\n", " ")
        for line in text.splitlines():
            m = re.search(pattern, line)
            if m and "..." not in line and "…" not in line:
                args = m.group(1).split("#")[0].strip().split("`")[0].strip()
                found.append((os.path.relpath(path, root), shlex.split(args)))
    return found


PROGRAMS = {"train_vgg.py": lambda argv: train_cli.make_parser(argv),
            "evaluate_vgg.py": lambda argv: evaluate_cli.make_parser(),
            "classify.py": lambda argv: classify_cli.make_parser(),
            "export.py": lambda argv: export_cli.make_parser()}


def test_every_documented_command_parses_with_whole_option_names():
    """What the README and docs tell a reader to type is accepted as written
    (options are not abbreviated, so a stale or shortened one would fail)."""
    from minivgg.models import CONFIGS

    def template(argv):  # a placeholder such as --seed S or --protocol PROTOCOL, or a listing
        return "--help" in argv or "python" in argv or any(
            re.fullmatch(r"[A-Z]+", a) and a not in CONFIGS for a in argv)
    checked = 0
    for script, make in PROGRAMS.items():
        for where, argv in _documented(rf"python examples/{re.escape(script)}\s(.*)"):
            if template(argv):
                continue
            try:
                make(argv).parse_args(argv)
            except SystemExit:
                pytest.fail(f"{where}: python examples/{script} {' '.join(argv)} does not parse")
            checked += 1
    for where, argv in _documented(r"python -m minivgg[ .]summary\s(.*)"):
        if template(argv):
            continue
        try:
            summary.make_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{where}: summary {' '.join(argv)} does not parse")
        checked += 1
    assert checked > 30
