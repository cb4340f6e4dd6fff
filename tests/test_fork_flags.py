"""Reading the fork's flags from an arguments.py, and judging an argv by them (preflight's check)."""
import json
from pathlib import Path

from runconfig.model_presets import preset
from runconfig.run_config import load_run_config
from tests.conftest import REPO_ROOT
from training.fork_flags import argv_problems, extract_flags, main
from training.megatron_argv import StartPoint, build_megatron_argv
from tests.fork_stand_in import fork_arguments_source
from training.fork_runtime import check_fork_argv

FIXTURE = Path(__file__).parent / "fixtures" / "fork_flags" / "mtf_arguments_flags.json"
SOURCE = '''
def _add_args(parser):
    group = parser.add_argument_group(title='x')
    group.add_argument('--num-layers', type=int, default=None, help='Number of layers.')
    group.add_argument('--bf16', action='store_true')
    group.add_argument('--no-bias-gelu-fusion', action='store_false', dest='bias_gelu_fusion')
    group.add_argument('--DDP-impl', default='local', choices=['local', 'torch'])
    group.add_argument('--data-path', nargs='*', default=None)
    group.add_argument('--local_rank', type=int, default=None)
    return parser
'''


def test_flags_are_read_from_the_syntax_tree():
    assert extract_flags(SOURCE) == {
        "--DDP-impl": {"takes_value": True, "choices": ["local", "torch"]},
        "--bf16": {"takes_value": False},
        "--data-path": {"takes_value": True, "nargs": "*"},
        "--local_rank": {"takes_value": True},
        "--no-bias-gelu-fusion": {"takes_value": False},
        "--num-layers": {"takes_value": True},
    }


def test_argv_problems_name_the_flag_and_the_fix():
    flags = extract_flags(SOURCE)
    assert argv_problems(["--num-layers", "2", "--bf16", "--DDP-impl", "local", "--data-path", "a", "b", "--bf16"], flags) == []
    assert argv_problems(["--num_layers", "2"], flags)[0] == (
        "--num_layers: not a flag of the fork's megatron/arguments.py (it spells it --num-layers)")
    assert argv_problems(["--num-layers", "--bf16"], flags) == ["--num-layers: needs a value"]
    assert argv_problems(["--DDP-impl", "fsdp"], flags) == ["--DDP-impl fsdp: not one of local, torch"]


def _fake_fork(tmp_path, drop=()):
    """A MEGATRON_DIR whose arguments.py defines the mtf branch's flags (rebuilt from the names-only fixture)."""
    (tmp_path / "megatron").mkdir(parents=True)
    (tmp_path / "megatron" / "arguments.py").write_text(fork_arguments_source(drop))
    return str(tmp_path)


def test_cli_reproduces_the_fixture_from_a_file(tmp_path, capsys):
    fork = _fake_fork(tmp_path)
    assert main([str(Path(fork) / "megatron" / "arguments.py")]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(FIXTURE.read_text())
    assert main([str(tmp_path / "missing.py")]) == 2


def _argv(*overrides):
    cfg = load_run_config(REPO_ROOT / "scripts" / "configs" / "starcoderbase-1b.yaml", list(overrides)).training
    return cfg, build_megatron_argv(cfg, preset("starcoderbase-1b"), StartPoint(False, "r"), 128)


def test_preflight_judges_the_argv_by_the_jobs_fork(tmp_path):
    cfg, argv = _argv()
    assert check_fork_argv(argv, cfg.extra_args, _fake_fork(tmp_path / "a")) == []
    # an older fork without flash attention rejects the argv, and preflight says so before the job is queued
    found = check_fork_argv(argv, cfg.extra_args, _fake_fork(tmp_path / "b", drop=("--use-flash-attn",)))
    assert [f.message.split(": ", 1)[1] for f in found] == [
        "--use-flash-attn: not a flag of the fork's megatron/arguments.py"]


def test_extra_args_may_not_repeat_or_switch_the_data_mode(tmp_path):
    cfg, argv = _argv("training.extra_args=[--lr, '1e-3', --data-path, x, --attention-dropout, '0.0']")
    messages = [f.message for f in check_fork_argv(argv, cfg.extra_args, str(tmp_path / "no-fork"))]
    assert messages == [
        "training.extra_args repeats --lr, which the run config already sets; change the training: key instead"
        " (one value in one place)",
        "training.extra_args has --data-path: the fork refuses it next to the weighted split files"
        " (train_split_file / valid_split_file)",
        f"{tmp_path / 'no-fork' / 'megatron' / 'arguments.py'} does not exist, so the argv's flags could not be"
        f" checked: MEGATRON_DIR={tmp_path / 'no-fork'} is not a whole checkout of the fork; check out its branch there"]
