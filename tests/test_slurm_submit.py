"""submit --dry-run: the sbatch command from the cluster: section, the job files, inert paths; the job script is thin."""
import json
import re
import shlex
import subprocess
from pathlib import Path

from runconfig.run_config import load_run_config
from tests.conftest import REPO_ROOT
from training.cluster.launch import main
from training.cluster.slurm_submit import JOB_SCRIPT, sbatch_argv


def test_sbatch_command_from_the_cluster_section(tmp_path):
    run = load_run_config(REPO_ROOT / "scripts" / "configs" / "starcoderbase.yaml",
                          ["cluster.account=proj1", "cluster.qos=high", "cluster.sbatch_args=[--mail-type=END]"])
    argv = sbatch_argv(run.cluster, tmp_path / "job.sh", tmp_path / "job", tmp_path / "logs", tmp_path)
    assert argv == [
        "sbatch", "--parsable", "--job-name=ft-sc15b", "--nodes=4", "--ntasks-per-node=1", "--time=24:00:00",
        f"--output={tmp_path / 'logs' / '%x-%j.out'}", f"--chdir={tmp_path}", "--gpus-per-node=8",
        "--partition=gpu", "--account=proj1", "--qos=high", "--cpus-per-task=64", "--mem=0", "--exclusive",
        "--mail-type=END", str(tmp_path / "job.sh"), str(tmp_path / "job"), str(Path("site.env").resolve()),
        "8", "29500"]
    cpu = load_run_config(None, ["cluster.request_gpus=false", "cluster.exclusive=false", "cluster.cpus_per_task=0"])
    plain = sbatch_argv(cpu.cluster, tmp_path / "j.sh", tmp_path, tmp_path, tmp_path)
    assert not [a for a in plain if a.startswith(("--gpus", "--partition", "--account", "--cpus", "--mem", "--exclusive"))]


def test_dry_run_writes_the_job_files_and_submits_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    odd = tmp_path / "my run $(touch injected); `touch injected2` 'q'"
    config = tmp_path / "run.yaml"
    site = tmp_path / "site.env"
    site.write_text("export X=1\n")
    config.write_text(f"training:\n  engine: local\n  load: {tmp_path / 'base'}\n  save: \"{odd}\"\n"
                      f"cluster:\n  site_env: {site}\n  job_name: 'x;touch injected3'\n")
    monkeypatch.setattr("training.cluster.preflight.run_preflight", lambda run, environ: [])
    assert main(["submit", "--config", str(config), "training.train_iters=3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    job_dir = next((odd / "slurm" / "jobs").iterdir())
    command = next(line for line in out.splitlines() if line.startswith("sbatch "))
    argv = shlex.split(command)  # printed shell-quoted: it splits back into the exact argv
    assert argv[-5:] == [str(job_dir / "finetune_starcoderbase.sh"), str(job_dir), str(site), "8", "29500"]
    assert "--job-name=x;touch injected3" in argv
    resolved = load_run_config(job_dir / "run_config.yaml")
    assert resolved == load_run_config(config, ["training.train_iters=3"])  # overrides applied, nothing else
    assert (job_dir / "finetune_starcoderbase.sh").read_bytes() == JOB_SCRIPT.read_bytes()
    assert not list(tmp_path.rglob("injected*")) and "submitted" not in out


def test_submit_refuses_without_the_site_env(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("training.cluster.preflight.run_preflight", lambda run, environ: [])
    config = tmp_path / "run.yaml"
    config.write_text(f"training:\n  save: {tmp_path / 's'}\n  load: {tmp_path / 'b'}\ncluster:\n  site_env: {tmp_path / 'nope.env'}\n")
    assert main(["submit", "--config", str(config), "--dry-run"]) == 2
    assert "site env file is missing; copy training/site.env.example" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_job_script_is_thin_and_strict():
    text = JOB_SCRIPT.read_text()
    assert "set -euo pipefail" in text and subprocess.run(["bash", "-n", str(JOB_SCRIPT)]).returncode == 0
    code = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    # no logic: no branches, loops, arrays, eval or process substitution that hides a failure
    assert not [line for line in code if re.search(r"\b(if|for|while|case|eval|mapfile|readarray)\b|<\(", line)]
    assert "srun" in text and "torch.distributed.run" in text and "--rdzv-backend=c10d" in text


def test_exec_becomes_the_named_process_without_a_shell(tmp_path):
    from tests.local_engine_fixtures import PYTHON, subprocess_env

    (tmp_path / "echo_args.py").write_text("import json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    values = ["a b", "$(touch injected)", "; touch injected2", "`touch injected3`"]
    job = tmp_path / "argv.json"
    job.write_text(json.dumps({"script": "echo_args", "nodes": 1, "gpus_per_node": 1, "argv": values}))
    env = dict(subprocess_env(), PYTHONPATH=f"{REPO_ROOT}:{tmp_path}")
    done = subprocess.run([PYTHON, "-m", "training.launch", "exec", str(job)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and json.loads(done.stdout) == values
    assert not list(tmp_path.glob("injected*"))
    job.write_text(json.dumps({"script": "finetune_mtf.py", "nodes": 1, "gpus_per_node": 1, "argv": []}))
    env.pop("MEGATRON_DIR", None)
    done = subprocess.run([PYTHON, "-m", "training.launch", "exec", str(job)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "set MEGATRON_DIR" in done.stderr


def test_exec_gives_the_fork_one_cuda_connection(tmp_path):
    """The fork (multi-query-attention) refuses to start (RuntimeError in validate_args) unless
    CUDA_DEVICE_MAX_CONNECTIONS is "1" whenever sequence parallelism or the async TP all-reduce (its default) is on."""
    from tests.local_engine_fixtures import PYTHON, subprocess_env

    fork = tmp_path / "fork"
    fork.mkdir()
    (fork / "pretrain_gpt.py").write_text("import os\nprint(os.environ.get('CUDA_DEVICE_MAX_CONNECTIONS'))\n")
    job = tmp_path / "argv.json"
    job.write_text(json.dumps({"script": "pretrain_gpt.py", "nodes": 1, "gpus_per_node": 1, "argv": []}))
    env = dict(subprocess_env(), PYTHONPATH=str(REPO_ROOT), MEGATRON_DIR=str(fork))
    env.pop("CUDA_DEVICE_MAX_CONNECTIONS", None)
    done = subprocess.run([PYTHON, "-m", "training.launch", "exec", str(job)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
