"""The command line: JSON output with the library's numbers, clear errors with exit code 2."""

import json

import pytest

from vitprune.cli import main

TINY = ["--model", "vit_tiny_patch16_224", "--model-kwargs", "img_size=64", "--model-kwargs", "depth=4"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_methods_lists_each_method(capsys):
    code, out, _ = run(capsys, "methods", "--json")
    assert code == 0 and {"tome", "evit", "ppt"} <= set(json.loads(out)["methods"])


def test_macs_json_matches_paper_tome_r13(capsys):
    code, out, _ = run(
        capsys, "macs", "--model", "deit_small_patch16_224", "--method", "tome", "-p", "r=13", "--json"
    )
    result = json.loads(out)
    assert code == 0
    assert result["gmacs"] == pytest.approx(2.70, rel=0.01)
    assert result["dense_gmacs"] == pytest.approx(4.6, rel=0.01)


def test_macs_target_flag(capsys):
    code, out, _ = run(capsys, "macs", *TINY, "--method", "evit", "--macs", "0.7", "--json")
    assert code == 0 and json.loads(out)["ratio"] == pytest.approx(0.7, abs=0.03)


def test_bench_reports_dense_method_and_resize_at_its_macs(capsys):
    argv = ["bench", *TINY, "--method", "tome", "-p", "r=2", "--batch-sizes", "1,2", "--precisions", "fp32"]
    code, out, _ = run(capsys, *argv, "--rounds", "1", "--runs", "1", "--json")
    rows = json.loads(out)["rows"]
    assert code == 0
    assert {(r["model"], r["batch_size"]) for r in rows} == {
        (m, b) for m in ("dense", "tome", "resize") for b in (1, 2)
    }
    assert all(r["images_per_s"] > 0 for r in rows)
    for row in rows:  # the method's speed as a fraction of the dense model on a smaller input, same run
        resize = next(r for r in rows if r["model"] == "resize" and r["batch_size"] == row["batch_size"])
        assert row["vs_resize"] == pytest.approx(row["images_per_s"] / resize["images_per_s"])
    tome, resize = (next(r for r in rows if r["model"] == m) for m in ("tome", "resize"))
    assert resize["gmacs"] < rows[0]["gmacs"] and resize["gmacs"] == pytest.approx(tome["gmacs"], rel=0.25)


def test_bench_cpp_wrapper_needs_compile(capsys):
    code, _, err = run(capsys, "bench", *TINY, "--method", "tome", "-p", "r=2", "--cpp-wrapper")
    assert code != 0 and "--cpp-wrapper" in err and "--compile" in err


def test_eval_on_fashion_mnist_subset(capsys):
    pytest.importorskip("vitprune.data")
    from vitprune.data.fashion_mnist import resolve_root

    if not (resolve_root() / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST not installed")
    argv = ["eval", *TINY, "--num-classes", "10", "--limit", "16", "--batch-size", "8", "--json"]
    code, out, _ = run(capsys, *argv)
    result = json.loads(out)
    assert code == 0 and 0 <= result["top1"] <= 100 and result["n"] == 16


@pytest.mark.parametrize(
    "argv,match",
    [
        (["macs", *TINY, "--method", "tome", "-p", "r=-1"], "r=-1"),
        (["macs", *TINY, "--method", "evit", "-p", "keep=2"], "keep=2"),
        (["macs", "--model", "resnet18", "--method", "tome"], "supported"),
        (["macs", "--model", "no_such_model"], "no_such_model"),
        (["eval", *TINY, "--data", "/no/such/dir"], "/no/such/dir"),
        (["macs", *TINY, "--checkpoint", "/no/such.safetensors"], "/no/such.safetensors"),
    ],
)
def test_bad_input_exits_2_with_message(capsys, argv, match):
    code, _, err = run(capsys, *argv)
    assert code == 2 and match in err


def test_calibrate_writes_a_star_calibration_the_method_loads(capsys, tmp_path):
    from vitprune.data.fashion_mnist import resolve_root

    if not (resolve_root() / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST not installed")
    out = tmp_path / "cal"
    argv = [
        "calibrate",
        *TINY,
        "--num-classes",
        "10",
        "--n",
        "2",
        "--dtype",
        "float32",
        "--out",
        str(out),
        "--json",
    ]
    code, stdout, _ = run(capsys, *argv)
    result = json.loads(stdout)
    assert code == 0 and result["images"] == 2 and len(result["acs"]) == 4
    code, stdout, _ = run(
        capsys, "macs", *TINY, "--method", "star", "-p", f"prior={out}", "--macs", "0.7", "--json"
    )
    assert code == 0 and json.loads(stdout)["ratio"] == pytest.approx(0.7, abs=0.03)
