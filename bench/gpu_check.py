"""One step of the GPU verification run by ``bench/gpu_check.sh`` (see that script for usage).

Each invocation runs ONE step and prints one or more JSON lines on stdout, every line an
object with a ``check`` key (``ok`` true/false; ``error`` when false). Whatever a step runs
(the ``tuner`` CLI, ``bench/throughput.py``) writes its own output to the log file, never to
stdout, so stdout stays pure JSON lines. Each line is also appended to ``$GPU_CHECK_JSONL``
(gpu_check.sh sets it), else, with ``$OUT`` set, to ``$OUT/gpu_check.jsonl``.

Only stable surfaces are used, so the tuner package can be restructured underneath: the
``tuner`` command line (its console-script target from pyproject.toml, run as
``python -c``: nothing is pip-installed on the GPU machine), ``bench/throughput.py`` and its
flags, a handful of public names (``INITIALIZERS``, ``apply_initializer``,
``applicability_error``, ``resolve_device``) taken from the top-level ``tuner`` or else from
the subpackage faces (``tuner.spec``, ``tuner.inits``, ...; never an underscore module), and
plain SQL on the SQLite results table (``tuner_trial_results``).

    python3 bench/gpu_check.py env|matmul|inits [--dry]
    python3 bench/gpu_check.py run --variant exact|fast|slots [--dry]
    python3 bench/gpu_check.py replay|check [--dry]
    python3 bench/gpu_check.py throughput --variant fast|sweep|exact|compile [--dry]

``--dry``: on CPU with tiny settings (every line then says ``"device": "cpu"``); the parts
that need CUDA (CUDA-event timing, the CUDA-generator comparison, the ``cuda:0`` checks of
manifests and reports) are left out and named in the line's ``dry_skipped`` field, which
always begins ``skipped: no CUDA``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "quickstart.yaml"
WORK = Path(os.environ.get("GPU_CHECK_WORK", "/tmp/gpu_check"))
# Faces that may hold a public name: the top-level package first (its __all__ before the
# restructure), then the subpackages' __init__ faces (after it). Never an underscore module.
FACES = ("tuner", "tuner.spec", "tuner.inits", "tuner.training", "tuner.studies", "tuner.tasks")
FOUND_IN: dict[str, str] = {}
NO_CUDA = "skipped: no CUDA"  # how a dry line names the parts it left out


def public(name: str) -> Any:
    """``name`` from the first public face of the tuner package that exports it."""
    import importlib

    for face in FACES:
        try:
            module = importlib.import_module(face)
        except ImportError:
            continue
        if hasattr(module, name):
            FOUND_IN[name] = face
            return getattr(module, name)
    raise ImportError(f"no public tuner face exports {name!r} (looked in {', '.join(FACES)})")


def cli_shim() -> str:
    """Python code running the ``tuner`` console script named in pyproject.toml."""
    import tomllib

    target = "tuner.cli:main"
    try:
        with open(ROOT / "pyproject.toml", "rb") as fh:
            target = tomllib.load(fh)["project"]["scripts"]["tuner"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        pass
    module, _, attr = target.partition(":")
    return (
        "import importlib, sys; sys.argv[0] = 'tuner'; "
        f"sys.exit(getattr(importlib.import_module({module!r}), {attr!r})())"
    )


PEER_CANDIDATES = (
    ROOT.parent / "shared" / "bench" / "baseline_optuna_loop.py",  # throughput.py's default
    ROOT / ".whl" / "peer" / "baseline_optuna_loop.py",  # carried in beside the wheels
)


class Ctx:
    """What every step needs: dry or not, the device, the log, the step's own deadline."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.dry: bool = args.dry
        self.device = "cpu" if args.dry else "cuda"
        self.tuner_device = "cpu" if args.dry else "cuda:0"
        self.log = Path(args.log)
        self.deadline = time.monotonic() + max(5.0, args.timeout - 8.0)
        self.variant: str | None = args.variant

    def left(self) -> float:
        return max(1.0, self.deadline - time.monotonic())


def emit(check: str, ctx: Ctx | None, **fields: Any) -> None:
    line: dict[str, Any] = {"check": check}
    if ctx is not None:
        line["device"] = ctx.device
        line["dry"] = ctx.dry
    line.update(fields)
    text = json.dumps(line, default=str)
    print(text, flush=True)
    out = os.environ.get("OUT")
    copy_to = os.environ.get("GPU_CHECK_JSONL") or (
        str(Path(out) / "gpu_check.jsonl") if out else ""
    )
    if copy_to:
        with open(copy_to, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")


def log_write(ctx: Ctx, text: str) -> None:
    with open(ctx.log, "a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")


def tail(text: str, n: int = 600) -> str:
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]


def sh(ctx: Ctx, argv: list[str], *, timeout: float | None = None) -> tuple[int, str, str, float]:
    """Run argv in its own process group; output to the log; (rc, stdout, stderr, seconds).

    rc is 124 when it ran past ``timeout`` (default: what is left of the step's own limit);
    the whole group is killed then, the children it started too.
    """
    limit = min(timeout or ctx.left(), ctx.left())
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="160", NO_COLOR="1")
    env.pop("TUNER_DATABASE_URL", None)
    log_write(ctx, f"\n===== $ {' '.join(argv)}   (limit {limit:.0f}s)")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=limit)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = 124
    seconds = round(time.perf_counter() - t0, 2)
    log_write(ctx, f"--- stdout\n{out}\n--- stderr\n{err}\n--- rc {rc} in {seconds}s")
    return rc, out, err, seconds


def tuner_cli(ctx: Ctx, *args: str, timeout: float | None = None) -> tuple[int, str, str, float]:
    return sh(ctx, [sys.executable, "-c", cli_shim(), *args], timeout=timeout)


def spec_path(ctx: Ctx) -> Path:
    """The study the run, replay and check steps use: the quickstart; with ``--dry`` the same
    study made tiny (a 32-wide MLP on the digits, 2 epochs), so the code paths run in seconds."""
    if not ctx.dry:
        return SPEC
    import yaml

    data = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    data["task"].update(hidden=[32], dataset="digits")
    data["budget"]["max_epochs"] = 2
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "dry_spec.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def study_name() -> str:
    import yaml

    return str(yaml.safe_load(SPEC.read_text(encoding="utf-8"))["name"])


def fp32_flags() -> dict[str, str]:
    """The process's fp32 precision per CUDA backend, read through torch's fp32_precision API
    (the legacy allow_tf32 flags raise once anything used it); "none": nothing set."""
    import torch

    cudnn: Any = torch.backends.cudnn
    return {
        "matmul": str(torch.backends.cuda.matmul.fp32_precision),
        "cudnn_conv": str(cudnn.conv.fp32_precision),
        "cudnn_rnn": str(cudnn.rnn.fp32_precision),
    }


def db_path(variant: str) -> Path:
    return WORK / f"{variant}.db"


def sqlite_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(con.execute(sql, params))
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------
# 1. environment


def step_env(ctx: Ctx) -> None:
    import torch

    fields: dict[str, Any] = {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "fp32_precision_default": fp32_flags(),  # torch's, before any tuner code runs
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        fields.update(
            device_count=torch.cuda.device_count(),
            device_name=torch.cuda.get_device_name(0),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            sm_count=props.multi_processor_count,
            memory_gib=round(props.total_memory / 2**30, 1),
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    else:
        fields.update(device_name=None, bf16_supported=None)
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in (
        "numpy",
        "optuna",
        "sqlalchemy",
        "alembic",
        "pydantic",
        "pydantic-core",
        "typer",
        "typing-extensions",
        "rich",
        "plotly",
        "mlxtend",
        "scikit-learn",
        "scipy",
        "pyyaml",
    ):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    fields["versions"] = versions
    import storage
    import tuner

    fields["tuner_file"] = tuner.__file__
    fields["tuner_version"] = getattr(tuner, "__version__", None)
    for name in ("apply_initializer", "applicability_error"):
        public(name)
    fields["tuner_initializers"] = len(public("INITIALIZERS"))
    fields["tuner_auto_device"] = str(public("resolve_device")("auto"))
    fields["public_names_from"] = dict(FOUND_IN)
    if ctx.dry and not torch.cuda.is_available():
        fields["dry_skipped"] = f"{NO_CUDA}: device properties"
    fields["storage_names"] = len(getattr(storage, "__all__", ()))
    rc, _, err, _ = tuner_cli(ctx, "--help", timeout=60)
    fields["cli_help_rc"] = rc
    ok = rc == 0 and (ctx.dry or torch.cuda.is_available())
    problem = tail(err) if rc else "" if ok else "CUDA is not available (use --dry for CPU)"
    emit("environment", ctx, ok=ok, **fields, **({"error": problem} if problem else {}))


# ---------------------------------------------------------------------------------------------
# 2. matmul peaks


def matmul_round_s(a: Any, b: Any, out: Any, k: int) -> float:
    """Seconds per matmul over one round of ``k`` (CUDA events on CUDA: no host sync inside)."""
    import torch

    if a.device.type == "cuda":
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(k):
            torch.matmul(a, b, out=out)
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) / 1e3 / k
    t0 = time.perf_counter()
    for _ in range(k):
        torch.matmul(a, b, out=out)
    return (time.perf_counter() - t0) / k


def step_matmul(ctx: Ctx) -> None:
    import torch

    n = 512 if ctx.dry else 8192
    k, rounds = (2, 3) if ctx.dry else (10, 5)  # K matmuls per timed round; the warm-up: K too
    device = torch.device(ctx.device)
    matmul: Any = torch.backends.cuda.matmul  # set through the new API only (not allow_tf32)
    results: dict[str, Any] = {}
    previous = matmul.fp32_precision
    try:
        for label, dtype, precision in (
            ("fp32", torch.float32, "ieee"),
            ("tf32", torch.float32, "tf32"),
            ("bf16", torch.bfloat16, "ieee"),
        ):
            matmul.fp32_precision = precision
            gen = torch.Generator(device=device).manual_seed(0)
            a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
            b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
            out = torch.empty_like(a)
            matmul_round_s(a, b, out, k)  # the warm-up round: the same K as the timed ones
            times = [matmul_round_s(a, b, out, k) for _ in range(rounds)]
            mean = sum(times) / len(times)
            results[label] = {
                "tflops_mean": round(2 * n**3 / mean / 1e12, 2),
                "tflops_best": round(2 * n**3 / min(times) / 1e12, 2),
                "ms_mean": round(mean * 1e3, 3),
                "fp32_precision": matmul.fp32_precision,
            }
            del a, b, out
    finally:
        matmul.fp32_precision = previous
    emit(
        "matmul_peaks",
        ctx,
        ok=fp32_flags()["matmul"] == previous,  # left as it was
        n=n,
        k=k,
        rounds=rounds,
        timer="cuda events" if device.type == "cuda" else "perf_counter",
        data="torch.randn",
        **(
            {"dry_skipped": f"{NO_CUDA}: 8192^3 timed with CUDA events (512^3 on CPU instead)"}
            if ctx.dry
            else {}
        ),
        **results,
    )


# ---------------------------------------------------------------------------------------------
# 3. initializers, CPU against the device


def _models() -> dict[str, tuple[Any, tuple[int, ...]]]:
    """name -> (builder, input shape without the batch dim)."""
    from torch import nn

    def mlp() -> nn.Module:
        return nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
        )

    def cnn() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 8 * 8, 10),
        )

    return {"mlp": (mlp, (64,)), "cnn": (cnn, (3, 8, 8))}


def _init_once(model: Any, name: str, gen_device: str, seed: int, calib: Any) -> Any:
    import torch

    gen = torch.Generator(device=gen_device).manual_seed(seed)
    return public("apply_initializer")(
        model, name, {}, activation="relu", generator=gen, calibration=calib
    )


def step_inits(ctx: Ctx) -> None:
    import torch

    initializers = public("INITIALIZERS")
    applicability_error = public("applicability_error")
    seed = 1234
    dev = torch.device(ctx.device)
    per_init: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name, info in initializers.items():
        required = [p for p, pinfo in info.params.items() if getattr(pinfo, "required", False)]
        if required:
            skipped[name] = f"needs {', '.join(required)}"
            continue
        for kind, (build, shape) in _models().items():
            torch.manual_seed(0)
            probe = build()
            if applicability_error(probe, name) is not None:
                continue
            calib_cpu = torch.randn(64, *shape, generator=torch.Generator().manual_seed(7))
            try:
                torch.manual_seed(0)
                cpu_model = build()
                dev_model = copy.deepcopy(cpu_model).to(dev)
                rec_cpu = _init_once(cpu_model, name, "cpu", seed, calib_cpu)
                rec_dev = _init_once(dev_model, name, "cpu", seed, calib_cpu.to(dev))
                diffs = {
                    pname: float(
                        (
                            p.detach().cpu().double()
                            - dict(dev_model.named_parameters())[pname].detach().cpu().double()
                        )
                        .abs()
                        .max()
                    )
                    for pname, p in cpu_model.named_parameters()
                }
                entry: dict[str, Any] = {
                    "init": name,
                    "model": kind,
                    "generator": "cpu",
                    "max_abs_diff": max(diffs.values()),
                    "identical": all(d == 0.0 for d in diffs.values()),
                    "layers": [
                        {
                            "layer": f"{a.layer}.{a.param}",
                            "applied": a.initializer,
                            "std_cpu": round(a.std, 6),
                            "std_dev": round(b.std, 6),
                        }
                        for a, b in zip(rec_cpu, rec_dev, strict=True)
                    ],
                }
                if dev.type == "cuda":  # the same seed drawn by a CUDA generator instead
                    torch.manual_seed(0)
                    gm = copy.deepcopy(cpu_model).to(dev)
                    rec_gen = _init_once(gm, name, "cuda", seed, calib_cpu.to(dev))
                    entry["cuda_generator"] = {
                        "max_abs_diff_vs_cpu": max(
                            float(
                                (p.detach().cpu().double() - q.detach().cpu().double()).abs().max()
                            )
                            for p, q in zip(cpu_model.parameters(), gm.parameters(), strict=True)
                        ),
                        "std": [round(r.std, 6) for r in rec_gen],
                    }
                per_init.append(entry)
            except Exception as exc:  # one initializer failing must not hide the others
                errors[f"{name}/{kind}"] = f"{type(exc).__name__}: {exc}"[:300]
                log_write(ctx, traceback.format_exc())
    for entry in per_init:
        emit("initializer", ctx, ok=True, **entry)
    differing = sorted(f"{e['init']}/{e['model']}" for e in per_init if not e["identical"])
    emit(
        "initializers",
        ctx,
        ok=not errors and bool(per_init),
        compared=f"cpu vs {ctx.device} (same CPU generator seed {seed})",
        applied=len(per_init),
        differing=differing,
        skipped=skipped,
        **(
            {"dry_skipped": f"{NO_CUDA}: CUDA model and CUDA generator (cpu against cpu instead)"}
            if ctx.dry
            else {}
        ),
        **({"error": json.dumps(errors)} if errors else {}),
    )


# ---------------------------------------------------------------------------------------------
# 4./7. tuner run


def _run_variant(ctx: Ctx) -> tuple[list[str], int]:
    trials = int(os.environ.get("GPU_CHECK_TRIALS", "3" if ctx.dry else "12"))
    if ctx.variant == "exact":
        return ["--exact"], trials
    if ctx.variant == "fast":
        return ["--fast", "--population", "8"], trials
    if ctx.variant == "slots":
        return ["--slots", "2"], trials
    raise SystemExit(f"unknown run variant {ctx.variant!r}")


def summarize_db(path: Path, name: str) -> dict[str, Any]:
    rows = sqlite_rows(
        path,
        "select trial_number, state, stop_reason, device, value, manifest_json "
        "from tuner_trial_results where study_name = ? order by trial_number",
        (name,),
    )
    states = Counter(r[1] for r in rows)
    stops = Counter(r[2] for r in rows)
    devices = Counter(r[3] for r in rows)
    m_devices: Counter[str] = Counter()
    m_names: Counter[str] = Counter()
    pops: Counter[str] = Counter()
    precisions: Counter[str] = Counter()
    for *_, manifest_json in rows:
        m = json.loads(manifest_json) if manifest_json else {}
        m_devices[str(m.get("device"))] += 1
        m_names[str(m.get("device_name"))] += 1
        flags = m.get("deterministic") or {}
        recorded = flags.get("fp32_precision", {"tf32_matmul": flags.get("tf32_matmul")})
        precisions[json.dumps(recorded, sort_keys=True)] += 1
        pop = m.get("population")
        pops[
            "single"
            if not pop
            else f"size={pop.get('size')},fast={pop.get('fast')},matmuls={pop.get('matmuls')}"
        ] += 1
    values = [r[4] for r in rows if r[1] == "complete" and r[4] is not None]
    return {
        "trials": len(rows),
        "states": dict(states),
        "stop_reasons": dict(stops),
        "row_device": dict(devices),
        "manifest_device": dict(m_devices),
        "manifest_device_name": dict(m_names),
        "manifest_fp32_precision": dict(precisions),
        "populations": dict(pops),
        "best_value": max(values) if values else None,
    }


def step_run(ctx: Ctx) -> None:
    flags, trials = _run_variant(ctx)
    WORK.mkdir(parents=True, exist_ok=True)
    db = db_path(str(ctx.variant))
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    name = study_name()
    argv = ["run", str(spec_path(ctx)), "--n-trials", str(trials), "--device", ctx.tuner_device]
    argv += ["--database-url", url, *flags]
    rc, out, err, seconds = tuner_cli(ctx, *argv)
    fields: dict[str, Any] = {
        "variant": ctx.variant,
        "command": "tuner " + " ".join(argv),
        "rc": rc,
        "wall_s": seconds,
        "n_trials": trials,
    }
    if db.is_file():
        try:
            fields.update(summarize_db(db, name))
        except Exception as exc:
            fields["db_error"] = f"{type(exc).__name__}: {exc}"
    if rc == 0:  # the results command on the same database
        rrc, _, rerr, _ = tuner_cli(ctx, "results", name, "--database-url", url, "--top", "3")
        fields["results_cli_rc"] = rrc
        if rrc:
            fields["results_cli_error"] = tail(rerr)
    # What the worker holds (the CLI's default: fast on CUDA), as every manifest must record
    fast = ctx.variant == "fast" or (ctx.variant == "slots" and not ctx.dry)
    expected = json.dumps(
        dict.fromkeys(("cudnn_conv", "cudnn_rnn", "matmul"), "tf32" if fast else "ieee")
    )
    fields["fp32_precision_expected"] = json.loads(expected)
    ok = rc == 0 and fields.get("trials", 0) > 0 and fields.get("results_cli_rc") == 0
    if ok and set(fields.get("manifest_fp32_precision", {})) != {expected}:
        ok, fields["error"] = False, "a manifest records another fp32 precision than the worker's"
    if ok and not ctx.dry:
        ok = set(fields.get("manifest_device", {})) == {"cuda:0"}
    if ctx.dry:
        fields["dry_skipped"] = f"{NO_CUDA}: cuda:0 (run on cpu; manifest device not checked)"
    if not ok and "error" not in fields:
        fields["error"] = tail(err or out) or "no trials recorded or wrong device in manifests"
    emit(f"tuner_run_{ctx.variant}", ctx, ok=ok, **fields)


# ---------------------------------------------------------------------------------------------
# 5. tuner replay


def step_replay(ctx: Ctx) -> None:
    name = study_name()
    did = False
    for variant in ("exact", "fast"):
        db = db_path(variant)
        if not db.is_file():
            emit("tuner_replay", ctx, ok=False, variant=variant, error=f"no database {db}")
            continue
        picked = sqlite_rows(
            db,
            "select trial_number, value, stop_reason, epochs_run from tuner_trial_results "
            "where study_name = ? and state = 'complete' order by trial_number limit 1",
            (name,),
        )
        if not picked:
            emit("tuner_replay", ctx, ok=False, variant=variant, error="no complete trial")
            continue
        number, value, stop, epochs = picked[0]
        argv = ["replay", name, str(number), "--database-url", f"sqlite:///{db}"]
        argv += ["--device", ctx.tuner_device]
        rc, out, err, seconds = tuner_cli(ctx, *argv)
        exact = "reproduced exactly" in out
        differs = "differs" in out
        fields: dict[str, Any] = {
            "variant": variant,
            "trial": number,
            "stored_value": value,
            "stored_stop": stop,
            "stored_epochs": epochs,
            "command": "tuner " + " ".join(argv),
            "rc": rc,
            "wall_s": seconds,
            "exact": exact,
            "reported": next(
                (ln.strip() for ln in out.splitlines() if "reproduced" in ln or "differs" in ln),
                None,
            ),
            "version_drift": [ln.strip() for ln in err.splitlines() if "recorded" in ln][:5],
        }
        if ctx.dry:
            fields["dry_skipped"] = f"{NO_CUDA}: a cuda:0 trial replayed on cuda:0 (cpu instead)"
        ran = (rc == 0 and exact) or (rc == 1 and differs)
        if not ran:
            fields["error"] = tail(err or out)
        did = did or ran
        emit("tuner_replay", ctx, ok=ran, **fields)
    if not did:
        log_write(ctx, "replay: nothing replayed")


# ---------------------------------------------------------------------------------------------
# 6. tuner check


def step_check(ctx: Ctx) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    report = WORK / "check.json"
    report.unlink(missing_ok=True)
    argv = ["check", str(spec_path(ctx)), "--device", ctx.tuner_device, "--json", str(report)]
    rc, out, err, seconds = tuner_cli(ctx, *argv)
    fields: dict[str, Any] = {"command": "tuner " + " ".join(argv), "rc": rc, "wall_s": seconds}
    if report.is_file():
        data = json.loads(report.read_text(encoding="utf-8"))
        out_dir = os.environ.get("OUT")
        if out_dir:
            (Path(out_dir) / "tuner_check.json").write_text(json.dumps(data, indent=1))
        overfit, lr, gen = (
            data.get("overfit", {}),
            data.get("lr_test", {}),
            data.get("generalization", {}),
        )
        fields.update(
            verdict=data.get("verdict"),
            report_device=data.get("device"),
            reference_initializer=data.get("reference_initializer"),
            overfit={k: overfit.get(k) for k in ("status", "steps", "initial_loss", "final_loss")},
            lr_test={k: lr.get(k) for k in ("status", "best_lr", "diverges_at", "proposed_lr")},
            generalization={
                k: gen.get(k) for k in ("status", "val_accuracy", "chance_accuracy", "epochs")
            },
            initializers_flagged=[
                c.get("label") for c in data.get("initializers", []) if c.get("problems")
            ],
            initializers_measured=len(data.get("initializers", [])),
            problems=data.get("problems"),
            duration_s=data.get("duration_s"),
        )
    ok = rc in (0, 1) and report.is_file()  # 1: problems found, still a report
    if ok and not ctx.dry:
        ok = str(fields.get("report_device", "")).startswith("cuda")
    if ctx.dry:
        fields["dry_skipped"] = f"{NO_CUDA}: cuda:0 (preflight on cpu)"
    if not ok:
        fields["error"] = tail(err or out) or "no report written"
    emit("tuner_check", ctx, ok=ok, **fields)


# ---------------------------------------------------------------------------------------------
# 8. bench/throughput.py


def step_throughput(ctx: Ctx) -> None:
    trials = os.environ.get("GPU_CHECK_TP_TRIALS", "2" if ctx.dry else "20")
    epochs = os.environ.get("GPU_CHECK_TP_EPOCHS", "1" if ctx.dry else "8")
    argv = [sys.executable, "bench/throughput.py", "--device", ctx.device]
    argv += ["--trials", trials, "--max-epochs", epochs]
    if ctx.dry:  # the peaks' code path only, in moments
        argv += ["--peak-size", "256"]
    forced = os.environ.get("GPU_CHECK_PEER")  # a path; else the first candidate found
    candidates = (Path(forced).resolve(),) if forced else PEER_CANDIDATES
    peer = next((p for p in candidates if p.is_file()), None)
    if peer is None:
        emit(
            "throughput",
            ctx,
            ok=False,
            variant=ctx.variant,
            error="peer script not found: " + ", ".join(map(str, candidates)),
        )
        return
    if peer != PEER_CANDIDATES[0]:
        argv += ["--peer", str(peer)]
    if ctx.variant == "fast":
        argv += ["--fast"]
    elif ctx.variant in ("sweep", "exact"):
        argv += ["--fast" if ctx.variant == "sweep" else "--exact"]
        argv += ["--sweep-k", "1,2" if ctx.dry else "1,8,64"]
    elif ctx.variant == "compile":  # the stacked step through torch.compile, compile included
        argv += ["--fast", "--compile", "--population", "2" if ctx.dry else "64"]
    else:
        raise SystemExit(f"unknown throughput variant {ctx.variant!r}")
    rc, out, err, seconds = sh(ctx, argv)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    command = next((ln[2:] for ln in out.splitlines() if ln.startswith("$ ")), " ".join(argv))
    fields: dict[str, Any] = {
        "variant": ctx.variant,
        "command": command,
        "rc": rc,
        "wall_s": seconds,
    }
    if lines:
        try:
            fields["result"] = json.loads(lines[-1])
        except json.JSONDecodeError:
            fields["raw"] = lines[-1][:2000]
    if peer != PEER_CANDIDATES[0]:
        fields["peer"] = str(peer)
    if ctx.dry:
        fields["dry_skipped"] = f"{NO_CUDA}: peaks timed with CUDA events (256^3, wall time, cpu)"
    ok = rc == 0 and "result" in fields
    if not ok:
        fields["error"] = tail(err or out) or f"exit {rc}, no JSON line"
    emit("throughput", ctx, ok=ok, **fields)


# ---------------------------------------------------------------------------------------------

STEPS = {
    "env": step_env,
    "matmul": step_matmul,
    "inits": step_inits,
    "run": step_run,
    "replay": step_replay,
    "check": step_check,
    "throughput": step_throughput,
}
NAMES = {
    "env": "environment",
    "matmul": "matmul_peaks",
    "inits": "initializers",
    "run": "tuner_run",
    "replay": "tuner_replay",
    "check": "tuner_check",
    "throughput": "throughput",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--variant", default=None)
    dry = os.environ.get("GPU_CHECK_DRY") == "1"
    parser.add_argument("--dry", action="store_true", default=dry, help="CPU, tiny settings")
    parser.add_argument("--timeout", type=float, default=300.0, help="this step's limit, s")
    parser.add_argument("--log", default=str(WORK / "gpu_check.log"))
    args = parser.parse_args()
    Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(args)
    t0 = time.perf_counter()
    try:
        STEPS[args.step](ctx)
    except BaseException as exc:  # every failure is a JSON line, never a bare traceback
        log_write(ctx, traceback.format_exc())
        name = NAMES[args.step] + (f"_{args.variant}" if args.variant else "")
        emit(name, ctx, ok=False, variant=args.variant, error=f"{type(exc).__name__}: {exc}"[:800])
    log_write(ctx, f"step {args.step} {args.variant or ''}: {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
