"""The synthetic experiment end to end in miniature (training/experiment_synthetic.py): two recipes,
one seed, a few steps, one selection and one test route, two processes; both looks with the graph
the paper deploys there, the statistics, the sim-to-real measures, the write-up, and resumption
(a finished stage never runs again; a removed result is redone alone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from min2real.experiments.plan import parse_args, plan_from_args
from min2real.experiments.report import DOCS_BEGIN, DOCS_END
from min2real.experiments.synthetic import main

RECIPES = ("baseline", "min2real")
VAL_SET, TEST_SET = "synth-val-empty:1", "synth-short-empty:1"


def _argv(out: Path, jobs: int, docs: Path) -> list[str]:
    return [
        "--out", str(out), "--recipes", *RECIPES, "--seeds", "0", "--steps", "3", "--batch-size", "4",
        "--train-data", "synthetic", "--train-frames", "12", "--train-routes", "2", "--val-frames", "6", "--val-routes", "2",
        "--traffic", "0", "--val-set", VAL_SET, "--test-set", TEST_SET,
        "--probe-drives", "2", "--probe-frames", "4", "--exporter", "legacy",  # the quicker exporter
        "--jobs", str(jobs), "--docs", str(docs),
    ]  # fmt: skip


def _stage_files(plan) -> dict[Path, int]:
    files = [path for recipe in RECIPES for path in plan.run_dir(recipe, 0).rglob("*.json")]
    return {path: path.stat().st_mtime_ns for path in files if "metrics" not in path.parts}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    docs = root / "docs" / "experiments.md"
    docs.parent.mkdir()
    docs.write_text(f"# Experiments\n\nbefore\n\n{DOCS_BEGIN}\nold section\n{DOCS_END}\n\nafter\n")
    argv = _argv(root / "out", jobs=2, docs=docs)
    assert main(argv) == 0
    return plan_from_args(parse_args(argv)), docs, argv


def test_each_look_is_driven_by_the_graph_deployed_there(experiment):
    plan, _, _ = experiment
    for recipe in RECIPES:
        run = plan.run_dir(recipe, 0)
        assert json.loads((run / "trained.json").read_text()) == {"steps": 3, "selects_on": "sim"}
        for route_set in (VAL_SET, TEST_SET):
            for look in ("sim", "real"):
                document = json.loads((plan.closed_loop_dir(recipe, 0, route_set, look) / "results.json").read_text())
                assert document["domain"] == look and document["model_domain"] == look
                assert document["policy"].endswith(f"model_{look}.onnx") and len(document["routes"]) == 1


def test_statistics_and_sim_to_real_measures_are_gathered(experiment):
    plan, _, _ = experiment
    results = json.loads((plan.out / "results.json").read_text())
    for stage in ("val", "test"):
        for look in ("sim", "real"):
            table = results["closed_loop"][stage][look]
            assert set(table) == set(RECIPES)
            baseline, min2real = table["baseline"], table["min2real"]
            assert baseline["difference"] is None and baseline["routes"] == 1
            route_scores = [
                json.loads((plan.closed_loop_dir(r, 0, plan.val_set if stage == "val" else plan.test_set, look)
                            / "results.json").read_text())["routes"][0]["driving_score"]
                for r in RECIPES
            ]  # fmt: skip
            assert baseline["mean"] == pytest.approx(route_scores[0])
            difference = min2real["difference"]
            assert difference["estimate"] == pytest.approx(route_scores[1] - route_scores[0])
            assert difference["cells"] == 1 and difference["claimed"] is False  # one pair proves nothing
            # the paper's comparisons among the recipes run: here only min2real vs baseline, the same pairing
            (comparison,) = results["comparisons"][stage][look]
            assert (comparison["recipe"], comparison["reference"]) == ("min2real", "baseline")
            assert comparison["difference"] == difference
    for recipe in RECIPES:  # the checkpoint the sim rule chose ({S} recipes), at one of the two validations
        open_loop = results["open_loop"][recipe]
        assert open_loop["selected_steps"] in ([0], [3]) and open_loop["real ADE (m)"]["mean"] > 0.0
    gap = results["domain_gap"]
    assert gap["baseline"]["after_adapter"] is None  # no adapter: only the plain sim features
    assert gap["baseline"]["before_adapter"]["discriminator_accuracy"] is None  # and no discriminator
    after = gap["min2real"]["after_adapter"]
    assert 0.0 <= after["discriminator_accuracy"]["mean"] <= 1.0
    assert -2.0 <= after["proxy_a_distance"]["mean"] <= 2.0 and 0.0 <= after["linear_cka"]["mean"] <= 1.0 + 1e-6
    assert gap["min2real"]["frames"] == {"pairs": 8, "drives": 2}
    assert results["budget_gate"]["met"] is (results["closed_loop"]["val"]["sim"]["baseline"]["mean"] >= 50.0)
    timing = results["timing"]
    assert set(timing["mean_s"]) >= {"train_s", "export_s", "closed_loop_test_real_s", "domain_gap_s"}
    assert set(timing["step_s_by_backbone"]) == {"resnet", "dinov2"}  # baseline: ResNet; min2real: DINOv2 slot


def test_the_write_up_replaces_only_its_section_and_links_the_figure(experiment):
    plan, docs, _ = experiment
    text = docs.read_text()
    assert text.startswith("# Experiments\n\nbefore\n") and text.endswith(f"{DOCS_END}\n\nafter\n")
    assert "old section" not in text and "**below the issue's budget**" in text
    assert f"Test routes, driven once: {TEST_SET}, real look (real graph)" in text
    assert "| min2real | sim adapted vs real |" in text and "CPU-hours; wall time with --jobs 2" in text
    assert f"#### The paper's comparisons, paired: {TEST_SET} (test routes)" in text
    assert "| min2real vs baseline | Min2Real parts, {S} | 1 x 1 |" in text
    figure = docs.parent / "figures" / f"experiment_synthetic_{plan.budget_key}.png"
    assert figure.stat().st_size > 10_000 and f"(figures/{figure.name})" in text


def test_a_second_start_keeps_finished_stages_and_redoes_only_a_removed_one(experiment):
    plan, _, argv = experiment
    before = _stage_files(plan)
    removed = plan.closed_loop_dir("min2real", 0, TEST_SET, "real") / "results.json"
    removed.unlink()
    assert main([*argv[:-4], "--jobs", "1"]) == 0  # no --docs this time
    after = _stage_files(plan)
    changed = {path for path in after if after[path] != before.get(path)}
    assert removed in changed and removed.is_file()
    assert changed <= {removed, plan.run_dir("min2real", 0) / "timing.json"}


@pytest.mark.parametrize(
    "bad",
    [
        ["--val-set", "synth-val:2", "--test-set", "synth-val:4"],  # never select on the test routes
        ["--recipes", "baseline", "no_such_recipe"],
        ["--recipes", "min2real"],  # no baseline to pair the differences with
    ],
)
def test_bad_plans_are_refused_before_anything_runs(tmp_path, bad, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--out", str(tmp_path), *bad])
    assert "experiment_synthetic.py: error:" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_a_failing_job_is_reported_and_the_others_still_run(tmp_path):
    from min2real.experiments.jobs import run_all

    argv = ["--out", str(tmp_path), "--recipes", "baseline", "augment", "--seeds", "0", "--train-data", "synthetic"]
    plan = plan_from_args(parse_args(argv))
    missing = {"sim": tmp_path / "missing" / "carla", "real": tmp_path / "missing" / "navsim"}
    failures = run_all(plan, {"train": missing, "val": missing})
    assert [failure.splitlines()[0] for failure in failures] == [
        "baseline seed 0 failed:",
        "augment seed 0 failed:",
    ]  # both tried (the first failure stops nothing), each with its traceback
    assert all("missing" in failure for failure in failures)
    assert not (plan.run_dir("baseline", 0) / "trained.json").exists()


def test_the_bundled_budget_trains_every_recipe_on_the_aggregate_and_real_labels_only_for_s_r(tmp_path):
    """The default data: the bundled model's expert drives + DAgger rounds; the real-look rounds
    (real driving labels) reach only {S, R} recipes; every recipe gets the bundled additions."""
    from min2real.experiments.plan import BUNDLED_ADDITIONS, BUNDLED_REAL_LOOK_ROUNDS, BUNDLED_SIM_ROUNDS, write_data
    from min2real.training.recipes import load_miniature, load_recipe

    data = tmp_path / "data"
    plan = plan_from_args(parse_args(["--out", str(tmp_path / "out"), "--data-root", str(data)]))
    assert plan.train_data == "bundled" and plan.cache_dir() == data / "bundled" / "cache"
    with pytest.raises(FileNotFoundError, match="bundled_dagger.sh") as error:
        write_data(plan)  # nothing there: named, never written here
    assert str(data / "dagger" / "r1" / "carla") in str(error.value)
    folders = [data / "bundled" / s / d for s in ("train", "val") for d in ("carla", "navsim")]
    folders += [data / "dagger" / r / "carla" for r in BUNDLED_SIM_ROUNDS]
    folders += [data / "dagger" / r / "real_look" for r in BUNDLED_REAL_LOOK_ROUNDS]
    for folder in folders:
        folder.mkdir(parents=True)
    roots = write_data(plan)
    assert roots["train"] == {"sim": data / "bundled/train/carla", "real": data / "bundled/train/navsim"}
    for recipe, real_labels in (("baseline", False), ("min2real", False), ("mixdata", True), ("full", True)):
        config = load_miniature(recipe, roots["train"], roots["val"], 10, overrides=plan.data_overrides(recipe))
        assert [Path(root) for root in config.data.sim_roots] == [folders[0], *folders[4 : 4 + len(BUNDLED_SIM_ROUNDS)]]
        assert bool(config.data.real_look_roots) is real_labels and config.data.real_driving_labels is real_labels
        model = config.model_config()
        assert model.use_speed_input is False and model.use_target_speed_head is True and model.steer_use_command
        assert config.loss.turn_weight == 2.0
        assert config.data.sim_camera == "256x96@100"  # named: data/bundled/train carries no synthetic.json
    bundled = load_recipe("bundled", ["model.dinov2_weights=none"])  # the additions are the bundled recipe's
    assert bundled.data.sim_camera == config.data.sim_camera
    for addition in BUNDLED_ADDITIONS:
        key, _, value = addition.partition("=")
        section, name = key.split(".")
        if key != "model.use_speed_input":  # set by training/bundled_dagger.sh from ns1 on, not in the YAML
            source = bundled.model_config() if section == "model" else getattr(bundled, section)
            assert str(getattr(source, name)).lower() == value.lower(), addition
    assert "bundled" in plan.budget_key and "--train-data bundled" in __import__(
        "min2real.experiments.report", fromlist=["command_line"]
    ).command_line(plan)


def test_export_names_the_synthetic_camera_when_the_data_folders_carry_no_summary(experiment, tmp_path):
    """The bundled rounds' folders need not carry synthetic.json: the graphs still record the
    synthetic world's sim camera (256 x 96 px, 100 degrees), named by the experiment."""
    import dataclasses
    import shutil

    import onnxruntime

    from min2real.experiments.jobs import export_stage
    from min2real.runtime.onnx_metadata import metadata_from_onnx_session

    plan, _, _ = experiment
    moved = dataclasses.replace(plan, out=tmp_path / "out")  # the same run, its graphs not exported yet
    shutil.copytree(plan.run_dir("baseline", 0) / "checkpoints", moved.run_dir("baseline", 0) / "checkpoints")
    hidden = list(plan.data_dir().rglob("synthetic.json"))
    assert hidden  # the training data the checkpoint names
    for path in hidden:
        path.rename(path.with_suffix(".hidden"))
    try:
        models = export_stage(moved, "baseline", 0)
    finally:
        for path in hidden:
            path.with_suffix(".hidden").rename(path)
    for look, model in models.items():
        metadata = metadata_from_onnx_session(onnxruntime.InferenceSession(str(model)), model)
        camera = metadata.source_camera
        assert (camera.width_px, camera.height_px, round(camera.fov_deg)) == (256, 96, 100), look


def test_measure_domain_gap_script_gives_the_experiments_measures_for_a_checkpoint(experiment, tmp_path):
    """training/measure_domain_gap.py on a run's checkpoint (same probe size) = that run's domain_gap.json."""
    import importlib.util

    from min2real.experiments.jobs import DOMAIN_GAP_FILE, best_checkpoint

    plan, _, _ = experiment
    spec = importlib.util.spec_from_file_location("measure_domain_gap", Path("training/measure_domain_gap.py"))
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    run = plan.run_dir("min2real", 0)
    out = tmp_path / "gap.json"
    checkpoint = best_checkpoint(run)
    argv = [str(checkpoint), "--out", str(out), "--probe-drives", "2", "--probe-frames", "4"]
    assert script.main(argv) == 0
    measured = json.loads(out.read_text())[str(checkpoint)]
    expected = json.loads((run / DOMAIN_GAP_FILE).read_text())
    assert measured.keys() == expected.keys() and measured["frames"] == expected["frames"]
    for part in ("before_adapter", "after_adapter"):  # equal up to float32 summation order (thread count)
        assert measured[part] == pytest.approx(expected[part], rel=1e-5, abs=1e-6), part
    with pytest.raises(SystemExit):  # a missing checkpoint is refused before anything runs
        script.main([str(tmp_path / "missing.pt"), "--out", str(out)])
