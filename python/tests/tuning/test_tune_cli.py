"""`slipway tune run`: a study file's command as the objective, trials through the job queue on
several worker processes, on both stores; a worker killed mid-trial; failing and pruning
objectives; bad study files."""

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness import REPO, postgres_url, slipway_bin, wait_for
from slipway import Slipway

OBJECTIVE = """
import json, math, os, signal, sys, time
from slipway import current_trial
if os.environ.get("IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
p = json.load(open(os.environ["SLIPWAY_TRIAL_PARAMS"]))
number = int(os.environ["SLIPWAY_TRIAL_NUMBER"])
open(os.path.join(os.environ["MARKS"], f"ran-{number}-{os.getpid()}"), "w").close()
print(f"trial {number} starts with {sorted(p)}")
if number == int(os.environ.get("SLOW_TRIAL", "-1")):
    time.sleep(120)
if p.get("mode") == "fail":
    print("boom: the objective broke", file=sys.stderr)
    sys.exit(3)
trial = current_trial()
if p.get("mode") == "prune":
    trial.report(9.0, 0)
    trial.prune()
x1, x2 = p["x1"], p["x2"]
b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
value = (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10
trial.report(value, 0)
"""


class Study:
    """A folder with a study file and its objective, and the stores' flags."""

    def __init__(self, backend, trials, extra="", config=""):
        self.dir = Path(tempfile.mkdtemp(prefix="slipway-tune-"))
        self.marks = self.dir / "marks"
        self.marks.mkdir()
        (self.dir / "objective.py").write_text(OBJECTIVE)
        (self.dir / "study.toml").write_text(
            f'name = "branin"\ntrials = {trials}\nseed = 5\n'
            f'command = "{sys.executable} objective.py"\n'
            '[params]\nx1 = { type = "float", low = -5, high = 10 }\nx2 = { type = "float", low = 0, high = 15 }\n'
            + extra
        )
        (self.dir / "slipway.toml").write_text("[jobs]\npoll_ms = 100\n" + config)
        self.stores = ["--config", str(self.dir / "slipway.toml"), "--data-dir", str(self.dir / "data")]
        if backend == "postgres":
            self.stores += ["--db", postgres_url()]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_") or k.startswith("SLIPWAY_TEST")}
        self.env["PYTHONPATH"] = str(REPO / "python")
        self.env["MARKS"] = str(self.marks)
        self.procs = []

    def cli(self, *args, check=True):
        done = subprocess.run([slipway_bin(), *args, *self.stores], capture_output=True, env=self.env, cwd=self.dir,
                              timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"slipway {' '.join(args)}: {done.stderr.decode()}")
        return done

    def worker(self, *args):
        p = subprocess.Popen([slipway_bin(), "worker", *args, *self.stores], env=self.env, cwd=self.dir,
                             stdout=subprocess.DEVNULL, stderr=open(self.dir / f"worker-{len(self.procs)}.log", "wb"),
                             start_new_session=True)
        self.procs.append(p)
        return p

    def artifact(self, run_id, name):
        """A file of a run's artifacts, read through a `slipway server` on the study's stores."""
        experiment = json.loads(self.cli("--json", "tune", "status", "branin").stdout)["experiment_id"]
        try:
            return self.get(f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run_id}/artifacts/{name}").decode()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def get(self, path):
        """GET `path` from a `slipway server` on the study's stores (no worker of its own)."""
        server = subprocess.Popen([slipway_bin(), "server", "--port", "0", "--no-worker", *self.stores],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env, cwd=self.dir)
        try:
            url = server.stdout.readline().decode().strip().removeprefix("slipway listening on ")
            with urllib.request.urlopen(url + path, timeout=10) as r:
                return r.read()
        finally:
            server.terminate()
            server.wait(timeout=10)

    def trials(self):
        return json.loads(self.cli("--json", "tune", "trials", "branin").stdout)["trials"]

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    return request.param


def test_four_workers_in_two_processes_record_each_trial_exactly_once(backend):
    s = Study(backend, trials=100)
    try:
        s.worker("--concurrency", "2")
        done = s.cli("tune", "run", "study.toml", "--workers", "2")
        trials = s.trials()
        assert [t["number"] for t in trials] == list(range(100))
        assert all(t["state"] == "COMPLETE" for t in trials), [t for t in trials if t["state"] != "COMPLETE"][:2]
        # Each trial's objective ran once: one mark per trial number.
        marks = [m.name.split("-")[1] for m in s.marks.iterdir()]
        assert sorted(int(n) for n in marks) == list(range(100))
        # Both processes ran trials.
        pids = {t["worker"].split(":")[1] for t in trials}
        assert len(pids) == 2, pids
        best = min(t["value"] for t in trials)
        status = json.loads(s.cli("--json", "tune", "status", "branin").stdout)
        assert status["best"]["value"] == best and status["counts"]["COMPLETE"] == 100
        # The same objective run sequentially in-process over 10 seeds: the parallel result is
        # no worse than the worst of them (bench/tuning compares medians).
        seq = [json.loads(subprocess.run([slipway_bin(), "--json", "tune", "try", "branin", "--trials", "100",
                                          "--seed", str(seed)], capture_output=True, check=True).stdout)["best_value"]
               for seed in range(10)]
        assert best <= max(seq), (best, sorted(seq))
        assert b"best trial" in done.stdout
    finally:
        s.close()


def test_a_worker_killed_mid_trial_leaves_it_failed_and_the_study_completes(backend):
    s = Study(backend, trials=3, config="lease_secs = 2\n")
    s.env["SLOW_TRIAL"] = "0"
    try:
        w1 = s.worker()
        s.cli("tune", "run", "study.toml", "--workers", "0", "--trial-lease", "2")
        mark = wait_for("the first trial's objective to start", lambda: list(s.marks.glob("ran-0-*")))[0]
        objective = int(mark.name.split("-")[2])
        assert alive(objective)
        os.killpg(w1.pid, signal.SIGKILL)
        w1.wait()
        # The objective, in a process group of its own, does not outlive its worker: the
        # worker's guard sees it gone and stops the objective's group.
        wait_for("the killed worker's objective to stop", lambda: not alive(objective), timeout=20)
        s.env.pop("SLOW_TRIAL")
        s.worker()
        wait_for("three complete trials", lambda: sum(t["state"] == "COMPLETE" for t in s.trials()) == 3, timeout=90)
        trials = s.trials()
        assert trials[0]["state"] == "FAIL"
        assert "worker" in trials[0]["error"], trials[0]["error"]
        assert [t["state"] for t in trials[1:]].count("COMPLETE") == 3 and len(trials) == 4
        status = json.loads(s.cli("--json", "tune", "status", "branin").stdout)
        assert status["counts"] == {"COMPLETE": 3, "FAIL": 1, "PRUNED": 0, "RUNNING": 0}
    finally:
        s.close()


def test_a_worker_stopped_mid_trial_fails_the_trial_at_once_and_another_runs_it_again():
    s = Study("sqlite", trials=1)
    s.env["SLOW_TRIAL"] = "0"
    try:
        w1 = s.worker("--concurrency", "2")
        s.cli("tune", "run", "study.toml", "--workers", "0")
        wait_for("the trial's objective to start", lambda: list(s.marks.glob("ran-0-*")))
        os.killpg(w1.pid, signal.SIGTERM)
        w1.wait(timeout=30)
        # Ended at once, not when its 30 s lease runs out.
        (first,) = s.trials()
        assert first["state"] == "FAIL", first
        assert first["error"].startswith("interrupted: its `slipway worker` was stopped"), first["error"]
        # Its job went back to the queue: another worker runs the trial again.
        s.env.pop("SLOW_TRIAL")
        s.worker()
        wait_for("the trial run again", lambda: [t["state"] for t in s.trials()] == ["FAIL", "COMPLETE"], timeout=60)
    finally:
        s.close()


def test_failing_and_pruning_objectives_end_their_trials_and_the_study_goes_on(backend):
    extra = ('mode = { type = "categorical", choices = ["ok", "fail", "prune"] }\n'
             '[[enqueue]]\nmode = "fail"\nx1 = 0.0\nx2 = 1.0\n[[enqueue]]\nmode = "prune"\nx1 = 0.0\nx2 = 1.0\n'
             '[[enqueue]]\nmode = "ok"\nx1 = 3.14159\nx2 = 2.275\n')
    s = Study(backend, trials=3, extra=extra)
    try:
        run = s.cli("tune", "run", "study.toml")
        assert "slipway: 1 trial failed: see `slipway tune trials branin --state FAIL`" in run.stderr.decode()
        t = s.trials()
        assert [x["state"] for x in t] == ["FAIL", "PRUNED", "COMPLETE"]
        assert "exited with status 3" in t[0]["error"] and "boom: the objective broke" in t[0]["error"]
        # Each trial's output is kept whole as artifacts of its run; an empty one is not stored.
        assert s.artifact(t[0]["run_id"], "stderr.txt").strip() == "boom: the objective broke"
        assert s.artifact(t[0]["run_id"], "stdout.txt").startswith("trial 0 starts with ['mode', 'x1', 'x2']")
        assert s.artifact(t[2]["run_id"], "stdout.txt").startswith("trial 2 starts with")
        assert s.artifact(t[2]["run_id"], "stderr.txt") is None
        assert t[1]["value"] == 9.0
        assert abs(t[2]["value"] - 0.397887) < 1e-4
        best = json.loads(s.cli("--json", "tune", "best", "branin").stdout)
        assert best["number"] == 2
    finally:
        s.close()


def test_a_study_none_of_whose_trials_completes_fails_and_says_where_to_look():
    s = Study("sqlite", trials=2)
    study = s.dir / "study.toml"
    study.write_text(study.read_text().replace('objective.py"', 'objective.py; exit 3"'))
    try:
        run = s.cli("tune", "run", "study.toml", check=False)
        err = run.stderr.decode().strip().splitlines()
        assert run.returncode == 1, err
        assert err[-1] == "error: no trial of study 'branin' completed (2 failed): see `slipway tune trials branin --state FAIL`"
        assert [t["state"] for t in s.trials()] == ["FAIL", "FAIL"]
    finally:
        s.close()


@pytest.mark.parametrize("body, field", [
    ('sampler = "anneal"\n', "sampler.type"),
    ('[params]\n', "params: the search space is empty"),
    ('[params]\nx = { type = "float", low = 2, high = 1 }\n', "params.x.low"),
    ('[params]\nlr = { type = "float", low = 0, high = 1, log = true }\n', "params.lr.low"),
    ('[params]\nx = { type = "float", low = 0, high = 1, wen = 1 }\n',
     "params.x.wen: unknown field (expected type, low, high, step, log, choices, when)"),
    ('directions = ["minimize", "maximize"]\nmetrics = ["a", "b"]\npruner = "median"\n', "pruner: a multi-objective"),
    ('directions = ["minimize", "maximize"]\nmetrics = ["a"]\n', "directions: expected one direction per metric"),
])
def test_a_bad_study_file_is_refused_naming_the_field_and_nothing_is_created(body, field):
    s = Study("sqlite", trials=1)
    text = 'name = "bad"\ncommand = "true"\n' + body
    if "[params]" not in body:
        text += '[params]\nx = { type = "float", low = 0, high = 1 }\n'
    (s.dir / "bad.toml").write_text(text)
    done = s.cli("tune", "run", "bad.toml", check=False)
    assert done.returncode != 0
    err = done.stderr.decode().strip()
    assert field in err and len(err.splitlines()) == 1, err
    assert json.loads(s.cli("--json", "tune", "status").stdout)["studies"] == []


def test_a_grid_study_runs_each_combination_once_and_stops():
    s = Study("sqlite", trials=10)
    (s.dir / "grid.toml").write_text(
        'name = "branin"\ntrials = 10\nsampler = "grid"\n'
        f'command = "{sys.executable} objective.py"\n'
        '[params]\nx1 = { type = "float", low = -5, high = 10, step = 15 }\n'
        'x2 = { type = "categorical", choices = [0.0, 15.0] }\n')
    try:
        s.cli("tune", "run", "grid.toml", "--workers", "2")
        t = s.trials()
        assert len(t) == 4 and all(x["state"] == "COMPLETE" for x in t)
        assert sorted((x["params"]["x1"], x["params"]["x2"]) for x in t) == [(-5.0, 0.0), (-5.0, 15.0), (10.0, 0.0), (10.0, 15.0)]
    finally:
        s.close()


TRADE_OFF = """
import json, math, os
import mlflow
p = json.load(open(os.environ["SLIPWAY_TRIAL_PARAMS"]))
latency, accuracy = os.environ["SLIPWAY_METRICS"].split(",")
with mlflow.start_run(run_id=os.environ["MLFLOW_RUN_ID"]):
    mlflow.log_metric(latency, 10 * p["x"])
    mlflow.log_metric(accuracy, math.sqrt(p["x"]) * p["y"])
"""


def test_a_multi_objective_study_file_runs_and_reports_its_pareto_front():
    s = Study("sqlite", trials=12)
    (s.dir / "trade_off.py").write_text(TRADE_OFF)
    (s.dir / "mo.toml").write_text(
        'name = "branin"\ntrials = 12\nseed = 3\n'
        'directions = ["minimize", "maximize"]\nmetrics = ["latency", "accuracy"]\n'
        f'command = "{sys.executable} trade_off.py"\n'
        '[params]\nx = { type = "float", low = 0, high = 1 }\ny = { type = "float", low = 0, high = 1 }\n')
    try:
        s.cli("tune", "run", "mo.toml", "--workers", "2")
        t = s.trials()
        assert len(t) == 12 and all(x["state"] == "COMPLETE" for x in t), [x.get("error") for x in t]
        for x in t:
            want = [10 * x["params"]["x"], math.sqrt(x["params"]["x"]) * x["params"]["y"]]
            assert x["values"] == pytest.approx(want) and x["value"] == x["values"][0]

        def dominated(a):
            return any(b["values"][0] <= a["values"][0] and b["values"][1] >= a["values"][1]
                       and b["values"] != a["values"] for b in t)

        front = [x["number"] for x in t if not dominated(x)]
        best = json.loads(s.cli("--json", "tune", "best", "branin").stdout)["best_trials"]
        assert [b["number"] for b in best] == front
        text = s.cli("tune", "best", "branin").stdout.decode()
        assert "Pareto front" in text and "latency (min)" in text and "accuracy (max)" in text
        status = s.cli("tune", "status", "branin").stdout.decode()
        assert "minimize,maximize" in status and f"{len(front)} trials" in status
    finally:
        s.close()


def test_tune_delete_removes_the_study_keeps_its_runs_and_cancels_its_queued_trials(backend):
    s = Study(backend, trials=2)
    try:
        s.cli("tune", "run", "study.toml")
        trials = s.trials()
        assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE"]
        status = json.loads(s.cli("--json", "tune", "status", "branin").stdout)
        done = s.cli("tune", "delete", "branin", "--json")
        assert json.loads(done.stdout) == {"name": "branin", "study_id": status["study_id"], "trials": 2, "running": 0,
                                           "runs_deleted": 0, "jobs_cancelled": 0}
        # Gone: status and a second delete fail with one line naming the study.
        for args in (("tune", "status", "branin"), ("tune", "delete", "branin")):
            gone = s.cli(*args, check=False)
            err = gone.stderr.decode().strip()
            assert gone.returncode != 0 and gone.stdout == b"", args
            assert len(err.splitlines()) == 1 and "'branin' does not exist" in err, err
        assert json.loads(s.cli("--json", "tune", "status").stdout)["studies"] == []
        # The name again, its trials queued and no worker yet: delete cancels them.
        s.cli("tune", "run", "study.toml", "--workers", "0")
        second = json.loads(s.cli("--json", "tune", "status", "branin").stdout)
        assert second["queued_jobs"] == 2 and second["counts"]["RUNNING"] == 0
        head, row = s.cli("tune", "status", "branin").stdout.decode().splitlines()[:2]
        assert dict(zip(head.split(), row.split()))["queued"] == "2", (head, row)
        done = s.cli("tune", "delete", "branin", "--runs")
        assert done.stdout.decode().strip() == "deleted study branin: 0 trials, 1 runs (restorable), 2 trial jobs cancelled"
        assert json.loads(s.cli("--json", "tune", "status").stdout)["studies"] == []
        # Through a server on the same stores (no worker of its own, which would take the queued
        # trials): the first study's runs stay, active; the second's run is soft-deleted; its
        # queued trial jobs are cancelled.
        server = subprocess.Popen([slipway_bin(), "server", "--port", "0", "--no-worker", *s.stores], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, env=s.env, cwd=s.dir)
        try:
            url = server.stdout.readline().decode().strip().removeprefix("slipway listening on ")

            def get(path):
                with urllib.request.urlopen(url + path, timeout=10) as r:
                    return json.load(r)

            for run_id in [t["run_id"] for t in trials] + [status["parent_run_id"]]:
                assert get(f"/api/v1/runs/{run_id}")["lifecycle_stage"] == "active"
            assert get(f"/api/v1/runs/{second['parent_run_id']}")["lifecycle_stage"] == "deleted"
            jobs = [j for j in get("/api/v1/jobs?limit=100")["jobs"] if j["kind"] == "tune.trial"]
            assert sorted(j["status"] for j in jobs) == ["cancelled", "cancelled", "succeeded", "succeeded"], jobs
            # Queued again, then deleted over HTTP (as the Python client and the web UI do): its
            # trial jobs are cancelled there too, and the answer counts them.
            s.cli("tune", "run", "study.toml", "--workers", "0")
            third = json.loads(s.cli("--json", "tune", "status", "branin").stdout)
            assert get("/api/v1/studies/branin")["queued_jobs"] == 2
            assert Slipway(url).get_study("branin").queued_jobs() == 2
            request = urllib.request.Request(url + "/api/v1/studies/branin", method="DELETE")
            with urllib.request.urlopen(request, timeout=10) as r:
                done = json.load(r)
            assert done == {"name": "branin", "study_id": third["study_id"], "trials": 0, "running": 0,
                            "runs_deleted": 0, "jobs_cancelled": 2}, done
            jobs = [j for j in get("/api/v1/jobs?limit=100")["jobs"] if j["kind"] == "tune.trial"]
            assert sorted(j["status"] for j in jobs) == ["cancelled"] * 4 + ["succeeded"] * 2, jobs
        finally:
            server.terminate()
            server.wait(timeout=10)
    finally:
        s.close()


def alive(pid):
    """Whether a process runs (a zombie, ended but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_resuming_a_study_of_more_than_a_thousand_queued_trials_queues_no_more(backend):
    s = Study(backend, trials=1_050)
    try:
        first = json.loads(s.cli("--json", "tune", "run", "study.toml", "--workers", "0").stdout)
        assert first == {"study": "branin", "queued": 1_050}
        # Again, nothing ended: every trial is still queued, so nothing more is.
        again = json.loads(s.cli("--json", "tune", "run", "study.toml", "--workers", "0").stdout)
        assert again == {"study": "branin", "queued": 0}
        done = json.loads(s.cli("--json", "tune", "delete", "branin").stdout)
        assert done["jobs_cancelled"] == 1_050
    finally:
        s.close()


def test_raising_trials_in_the_study_file_runs_more_and_other_changes_are_named_not_applied(backend):
    s = Study(backend, trials=2)
    try:
        s.cli("tune", "run", "study.toml", "--workers", "1")
        study = s.dir / "study.toml"
        study.write_text(study.read_text().replace("trials = 2", "trials = 4"))
        # No more workers start than there are trials to run: two here, not 64.
        more = s.cli("tune", "run", "study.toml", "--workers", "64")
        assert "now aims at 4 trials (was 2)" in more.stderr.decode()
        assert "by 2 workers here" in more.stderr.decode(), more.stderr.decode()
        status = json.loads(s.cli("--json", "tune", "status", "branin").stdout)
        assert (status["counts"]["COMPLETE"], status["n_trials"]) == (4, 4)
        assert [t["number"] for t in s.trials()] == [0, 1, 2, 3]
        # The list: the target and the backlog, and no best trial (a list does not compute it).
        listed = json.loads(s.cli("--json", "tune", "status").stdout)["studies"]
        assert [(x["name"], x["n_trials"], x["queued_jobs"]) for x in listed] == [("branin", 4, 0)]
        assert "best" not in listed[0] and "best_trials" not in listed[0]
        head = s.cli("tune", "status").stdout.decode().splitlines()[0].split()
        assert head[-3:] == ["queued", "target", "updated"] and head[0] == "study"
        too_many = s.cli("tune", "run", "study.toml", "--workers", "257", check=False)
        assert too_many.returncode == 2 and "not in 0..=256" in too_many.stderr.decode()
        # Another change (the seed, a range): named, not applied; nothing more runs.
        study.write_text(study.read_text().replace("seed = 5", "seed = 6").replace("high = 10", "high = 9"))
        other = s.cli("tune", "run", "study.toml", "--workers", "1")
        said = other.stderr.decode()
        assert "exists with another file (params, seed differ)" in said, said
        assert "tune delete branin" in said
        again = json.loads(s.cli("--json", "tune", "status", "branin").stdout)
        assert (again["counts"]["COMPLETE"], again["n_trials"], again["seed"]) == (4, 4, 5)
    finally:
        s.close()


def test_interrupting_tune_run_stops_an_objective_that_ignores_sigterm_after_the_grace():
    s = Study("sqlite", trials=2)
    # `; true`: the shell stays, so the objective is not its group's leader; and it ignores
    # SIGTERM, so only the SIGKILL that follows the grace stops it — sent by the trial's guard,
    # since tune run itself exits at once.
    study = s.dir / "study.toml"
    study.write_text(study.read_text().replace('objective.py"', 'objective.py; true"'))
    s.env.update({"SLOW_TRIAL": "0", "IGNORE_TERM": "1"})
    try:
        run = subprocess.Popen([slipway_bin(), "tune", "run", "study.toml", "--workers", "1", *s.stores], env=s.env,
                               cwd=s.dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        s.procs.append(run)
        # The mark is written after the objective ignores SIGTERM.
        mark = wait_for("trial 0's objective to start", lambda: list(s.marks.glob("ran-0-*")))[0]
        objective = int(mark.name.split("-")[2])
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=30)
        assert run.returncode == 130, err
        # Its trial ended at once (not when its 30 s lease ran out), saying why.
        first = s.trials()[0]
        assert first["state"] == "FAIL" and first["error"].startswith("interrupted:"), first
        wait_for("the objective to be killed after the grace", lambda: not alive(objective), timeout=20)
    finally:
        s.close()


def test_a_guard_says_ready_then_stops_its_group_once_its_stdin_closes():
    # The contract between a worker and `slipway tune guard PGID`: a `ready` line first (a worker
    # warns without it), nothing while the pipe is open, SIGTERM to the group once it closes.
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    guard = subprocess.Popen([slipway_bin(), "tune", "guard", str(sleeper.pid)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert guard.stdout.readline() == b"ready\n"
        time.sleep(0.5)
        assert sleeper.poll() is None and guard.poll() is None, "nothing happens while the pipe is open"
        guard.stdin.close()
        assert guard.wait(timeout=20) == 0, guard.stderr.read()
        assert sleeper.wait(timeout=5) == -signal.SIGTERM
    finally:
        for p in (sleeper, guard):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_force_deleting_a_running_study_stops_its_objective_and_tune_run(backend):
    s = Study(backend, trials=3)
    s.env["SLOW_TRIAL"] = "0"
    try:
        run = subprocess.Popen([slipway_bin(), "tune", "run", "study.toml", "--workers", "1", "--trial-lease", "3",
                                *s.stores], env=s.env, cwd=s.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
        s.procs.append(run)
        mark = wait_for("trial 0's objective to start", lambda: list(s.marks.glob("ran-0-*")))[0]
        objective = int(mark.name.split("-")[2])
        assert alive(objective)
        study_id = json.loads(s.cli("--json", "tune", "status", "branin").stdout)["study_id"]
        refused = s.cli("tune", "delete", "branin", check=False)
        assert refused.returncode != 0 and "1 running trial" in refused.stderr.decode()
        done = json.loads(s.cli("tune", "delete", "branin", "--force", "--json").stdout)
        assert (done["study_id"], done["trials"], done["running"]) == (study_id, 1, 1)
        # tune run learns it, stops its worker and says why; the objective is stopped, not orphaned.
        _, err = run.communicate(timeout=60)
        assert run.returncode == 1, err
        assert err.decode().strip().splitlines()[-1] == "error: study 'branin' was deleted while it ran"
        # The study's three jobs all ended without running to success: cancelled by the delete
        # (it counts those it cancelled), or by tune run if it saw the deletion first.
        jobs = [j for j in json.loads(s.get("/api/v1/jobs?limit=100"))["jobs"] if j["subject"] == study_id]
        assert len(jobs) == 3 and all(j["status"] in ("cancelled", "failed") for j in jobs), jobs
        assert done["jobs_cancelled"] <= 3, done
        wait_for("the deleted study's objective to stop", lambda: not alive(objective), timeout=20)
        assert not list(s.marks.glob("ran-1-*")), "no trial of the deleted study started after it"
        # A new study of the name runs its own trials, from its trial 0.
        s.env.pop("SLOW_TRIAL")
        s.cli("tune", "run", "study.toml", "--workers", "1")
        again = json.loads(s.cli("--json", "tune", "status", "branin").stdout)
        assert again["study_id"] != study_id and again["counts"]["COMPLETE"] == 3
    finally:
        s.close()


def tune_try(*args):
    return subprocess.run([slipway_bin(), "--json", "tune", "try", *args], capture_output=True, text=True)


def test_tune_try_takes_how_running_trials_are_treated_and_refuses_clashing_choices():
    # The believer acts only on trials sampled while others run: one at a time it changes nothing.
    base = ["rosenbrock10", "--trials", "30", "--seed", "3"]
    history = lambda *extra: json.loads(tune_try(*base, *extra).stdout)["history"]
    assert history() == history("--believer", "false")
    believed = history("--parallel", "4")
    assert believed != history("--parallel", "4", "--believer", "false")
    assert believed != history("--parallel", "4", "--constant-liar", "true")
    for args, wanted in [(["--constant-liar", "true", "--believer", "true"], "choose one"),
                         (["--sampler", "random", "--believer", "false"], "only for a TPE sampler"),
                         (["--sampler", "tpe-optuna", "--believer", "true"], "no believer")]:
        done = tune_try(*base, *args)
        assert done.returncode != 0 and done.stdout == "", args
        assert done.stderr.count("\n") == 1 and wanted in done.stderr, done.stderr
    multi = tune_try("zdt1", "--trials", "5", "--believer", "true")
    assert multi.returncode != 0 and "one objective" in multi.stderr, multi.stderr
