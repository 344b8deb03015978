#!/usr/bin/python3
"""The Optuna side of `hpt tune` (host/cli/tune_command.cpp): the only Python hpt itself runs.

`hpt tune` checks the tune manifest, writes spec.json into the tune directory and runs
    /usr/bin/python3 hpt_tune.py SPEC.json [--export-only]
This driver opens (or resumes) the Optuna study in spec["storage"] and runs the trials
still missing to reach spec["trials"] (COMPLETE, PRUNED and FAIL trials count; trials
interrupted by Ctrl-C do not), spec["workers"] at a time. Each trial is
    HPT run BASE OVERRIDES... PARAM=VALUE... run.runs_dir=TRIALS run.name=NUMBER
in its own process and run directory (TRIALS/NUMBER, its output in output.log there).
While it runs, every evaluation in its metrics.jsonl is reported to the pruner; a trial
the pruner stops gets SIGTERM (hpt stops cleanly) and is marked PRUNED. A run that fails
is a FAIL trial with its error kept. SIGINT or SIGTERM stops the running trials (SIGTERM
to each), marks them FAIL with user attribute "interrupted" and exits 130/143; the study
stays resumable. Then (and with --export-only, without running anything) it writes
trials.json, trials.csv and importance.json into the tune directory for the report.

Why Python: Optuna is a Python library, and Debian ships it (python3-optuna); the search
itself (samplers, pruners, the study storage) is Optuna's, not ours.
Exit codes: 0 done, 1 failure, 2 bad input (no optuna, a bad spec), 128+signal interrupted.
"""
import csv
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

POLL_SECONDS = 0.2


def fail(message, code=2):
    sys.stderr.write("hpt tune: " + message + "\n")
    sys.exit(code)


try:
    import optuna
except ImportError as e:  # hpt tune says which python it ran
    fail("the Python module optuna is missing for %s (%s); install Debian's python3-optuna "
         "(scripts/deps.sh does)" % (sys.executable, e))

optuna.logging.set_verbosity(optuna.logging.WARNING)
TrialState = optuna.trial.TrialState


def say(message):
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


# --- the study -------------------------------------------------------------------------

def make_sampler(spec):
    name, seed = spec["sampler"], spec.get("seed")
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid_space(spec), seed=seed)
    fail("unknown sampler %r" % name)


def grid_space(spec):
    space = {}
    for p in spec["params"]:
        if p["type"] == "choice":
            space[p["name"]] = [c["value"] for c in p["choices"]]
        elif p["type"] == "int":
            space[p["name"]] = list(range(p["low"], p["high"] + 1, p.get("step") or 1))
        else:
            fail("the grid sampler needs choice or int parameters; %s is a float range" % p["name"])
    return space


def grid_size(spec):
    n = 1
    for values in grid_space(spec).values():
        n *= len(values)
    return n


def make_pruner(spec):
    p = spec["pruner"]
    if p["name"] == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.get("startup_trials", 5),
                                           n_warmup_steps=p.get("warmup_steps", 0))
    if p["name"] == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def open_study(spec):
    # Machines that start together on a new database race to create Optuna's tables and
    # the study (a unique-key error for all but one): the losers try again.
    for attempt in range(6):
        try:
            return optuna.create_study(study_name=spec["study_name"], storage=spec["storage"],
                                       sampler=make_sampler(spec), pruner=make_pruner(spec),
                                       direction=spec["objective"]["direction"], load_if_exists=True)
        except Exception as e:  # sqlalchemy's IntegrityError, ProgrammingError, ...
            if attempt == 5 or spec.get("local_storage"):
                raise
            say("opening the study in %s failed (%s); trying again" % (spec["storage"], type(e).__name__))
            time.sleep(0.5 + attempt)


def counts(trial):
    """Whether a finished trial counts toward spec["trials"] (an interrupted one does not)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and not trial.user_attrs.get("interrupted", False)


# --- one trial -------------------------------------------------------------------------

def sample(trial, spec):
    """The trial's parameters (a parameter whose `when` does not hold is not sampled) and
    its overrides as key=TOML text."""
    values, overrides = {}, []
    for p in spec["params"]:  # conditions name parameters listed before them
        when = p.get("when") or {}
        if any(values.get(k) != v for k, v in when.items()):
            continue
        name = p["name"]
        if p["type"] == "float":
            v = trial.suggest_float(name, p["low"], p["high"], log=p.get("log", False), step=p.get("step"))
            text = repr(float(v))
        elif p["type"] == "int":
            v = trial.suggest_int(name, p["low"], p["high"], log=p.get("log", False), step=p.get("step") or 1)
            text = str(int(v))
        else:
            choices = p["choices"]
            v = trial.suggest_categorical(name, [c["value"] for c in choices])
            text = next(c["toml"] for c in choices if c["value"] == v and type(c["value"]) is type(v))
        values[name] = v
        overrides.append(name + "=" + text)
    return values, overrides


def follow_metrics(path, offset, partial):
    """New complete lines of metrics.jsonl after `offset`: (records, offset, partial)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset, partial
    offset += len(data)
    text = partial + data.decode("utf-8", "replace")
    lines = text.split("\n")
    records = []
    for line in lines[:-1]:
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records, offset, lines[-1]


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def error_of(log_path):
    """The run's error: its `hpt: ...` lines, else the last lines of its output."""
    try:
        with open(log_path, errors="replace") as f:
            lines = [l.rstrip() for l in f if l.strip()]
    except OSError:
        return "no output"
    errors = [l for l in lines if l.startswith("hpt:")]
    return "\n".join(errors[-3:] if errors else lines[-5:])


class Tuner:
    def __init__(self, spec):
        self.spec = spec
        self.study = open_study(spec)
        self.lock = threading.Lock()  # around study calls: one storage session at a time
        self.stop = threading.Event()
        self.stop_signal = 0
        self.children = {}  # trial number -> Popen
        obj = spec["objective"]
        self.metric = obj["metric"]
        # Intermediate values are oriented as the study's direction: for time to target
        # (minimised), a metric that rises (accuracy) is reported negated.
        self.sign = -1.0 if obj["kind"] == "time_to_target" and obj.get("metric_maximize") else 1.0
        self.target = spec["trials"]
        if spec["sampler"] == "grid":
            self.target = min(self.target, grid_size(spec))

    def recover_stale(self):
        """SQLite in the tune directory is this machine's alone: a RUNNING trial there was
        left by a driver that was killed; it becomes FAIL (interrupted), not counted."""
        if not self.spec.get("local_storage"):
            return
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            self.study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)

    def next_trial(self):
        with self.lock:
            if self.stop.is_set():
                return None
            trials = self.study.get_trials(deepcopy=False)
            done = sum(1 for t in trials if counts(t))
            running = sum(1 for t in trials if t.state == TrialState.RUNNING)
            if done + running >= self.target:
                return None
            return self.study.ask()

    def tell(self, trial, **kw):
        with self.lock:
            self.study.tell(trial, **kw)

    def run_trial(self, trial):
        spec = self.spec
        with self.lock:
            values, overrides = sample(trial, spec)
        number = trial.number
        run_dir = os.path.join(spec["trials_dir"], str(number))
        log_path = run_dir + ".log"  # beside: `hpt run --overwrite` replaces the directory
        args = [spec["hpt"], "run", spec["base"]] + spec["overrides"] + overrides + [
            "run.runs_dir=" + json.dumps(spec["trials_dir"]), "run.name=" + json.dumps(str(number)),
            "--overwrite", "--no-progress"]
        with self.lock:
            trial.set_user_attr("run_dir", run_dir)
            trial.set_user_attr("overrides", overrides)
        say("trial %d: %s" % (number, " ".join(overrides)))
        started = time.time()
        os.makedirs(spec["trials_dir"], exist_ok=True)
        with open(log_path, "w") as log:
            child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        with self.lock:
            self.children[number] = child
            if self.stop.is_set():
                child.send_signal(signal.SIGTERM)
        metrics_path = os.path.join(run_dir, "metrics.jsonl")
        offset, partial, reported, pruned = 0, "", set(), False
        last_value = None
        while True:
            code = child.poll()
            records, offset, partial = follow_metrics(metrics_path, offset, partial)
            for r in records:
                v = r.get(self.metric)
                if r.get("type") != "eval" or not isinstance(v, (int, float)) or r["step"] in reported:
                    continue
                reported.add(r["step"])
                last_value = self.sign * v
                if pruned or self.stop.is_set():
                    continue
                with self.lock:
                    trial.report(last_value, r["step"])
                    prune = trial.should_prune()
                if prune and code is None:
                    pruned = True
                    say("trial %d: pruned at step %d (%s = %g)" % (number, r["step"], self.metric, v))
                    child.send_signal(signal.SIGTERM)
            if code is not None:
                break
            time.sleep(POLL_SECONDS)
        with self.lock:
            self.children.pop(number, None)
        seconds = time.time() - started
        if os.path.isdir(run_dir):
            try:
                os.replace(log_path, os.path.join(run_dir, "output.log"))
                log_path = os.path.join(run_dir, "output.log")
            except OSError:
                pass
        summary = read_json(os.path.join(run_dir, "summary.json")) or {}
        with self.lock:
            trial.set_user_attr("seconds", seconds)
            trial.set_user_attr("steps", summary.get("steps"))
            trial.set_user_attr("train_seconds", summary.get("train_seconds"))
            trial.set_user_attr("status", summary.get("status"))
            trial.set_user_attr("exit_code", code)
        if pruned:
            self.tell(trial, state=TrialState.PRUNED)
            return
        if self.stop.is_set() and code != 0:
            with self.lock:
                trial.set_user_attr("interrupted", True)
            self.tell(trial, state=TrialState.FAIL)
            say("trial %d: interrupted" % number)
            return
        value, error = self.objective(summary, code, log_path)
        if error:
            with self.lock:
                trial.set_user_attr("error", error)
            self.tell(trial, state=TrialState.FAIL)
            say("trial %d: failed: %s" % (number, error.splitlines()[0] if error else ""))
            return
        self.tell(trial, values=value)
        say("trial %d: %s = %g" % (number, self.spec["objective"]["label"], value))

    def objective(self, summary, code, log_path):
        """(value, None) or (None, error)."""
        if code != 0:
            return None, "hpt run exited with %d: %s" % (code, error_of(log_path))
        obj = self.spec["objective"]
        if obj["kind"] == "time_to_target":
            # The bench protocol's budget rule: a miss counts as twice its training time
            # scaled to the budget (bench_results.hpp).
            if summary.get("seconds_to_target") is not None:
                return float(summary["seconds_to_target"]), None
            steps, seconds, budget = summary.get("steps"), summary.get("train_seconds"), summary.get("max_steps")
            if not steps or seconds is None or not budget:
                return None, "summary.json has no steps, train_seconds or max_steps"
            return 2.0 * seconds * budget / steps, None
        v = (summary.get("final_metrics") or {}).get(self.metric)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            have = ", ".join(sorted((summary.get("final_metrics") or {}).keys())) or "none"
            return None, "the run's final evaluation has no finite %s (its metrics: %s)" % (self.metric, have)
        return float(v), None

    def worker(self):
        while True:
            trial = self.next_trial()
            if trial is None:
                return
            try:
                self.run_trial(trial)
            except Exception as e:  # a trial's failure is the trial's, not the study's
                try:
                    with self.lock:
                        trial.set_user_attr("error", "hpt tune driver: %r" % (e,))
                    self.tell(trial, state=TrialState.FAIL)
                except Exception:
                    pass

    def on_signal(self, signum, frame):
        self.stop_signal = signum
        self.stop.set()
        for child in list(self.children.values()):
            try:
                child.send_signal(signal.SIGTERM)
            except OSError:
                pass

    def run(self):
        self.recover_stale()
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGTERM, self.on_signal)
        done = sum(1 for t in self.study.get_trials(deepcopy=False) if counts(t))
        if done >= self.target:
            say("study %s already has %d of %d trials" % (self.spec["study_name"], done, self.target))
        else:
            say("study %s: %d of %d trials done; running %d, %d at a time" % (
                self.spec["study_name"], done, self.target, self.target - done, self.spec["workers"]))
        threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(self.spec["workers"])]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(POLL_SECONDS)  # the main thread stays free for the signal handler


# --- outputs ---------------------------------------------------------------------------

def trial_record(t):
    return {
        "number": t.number,
        "state": t.state.name,
        "value": t.value if t.state == TrialState.COMPLETE else None,
        "params": t.params,
        "overrides": t.user_attrs.get("overrides", []),
        "run_dir": t.user_attrs.get("run_dir"),
        "steps": t.user_attrs.get("steps"),
        "train_seconds": t.user_attrs.get("train_seconds"),
        "seconds": t.user_attrs.get("seconds"),
        "interrupted": bool(t.user_attrs.get("interrupted", False)),
        "error": t.user_attrs.get("error"),
        "intermediate": sorted([int(k), v] for k, v in t.intermediate_values.items()),
    }


def export(spec, study):
    out = spec["dir"]
    trials = [trial_record(t) for t in study.get_trials(deepcopy=False)]
    names = [p["name"] for p in spec["params"]]
    with open(os.path.join(out, "trials.json.tmp"), "w") as f:
        json.dump({"study_name": spec["study_name"], "direction": spec["objective"]["direction"],
                   "objective": spec["objective"]["label"], "params": names, "trials": trials}, f, indent=1)
    os.replace(os.path.join(out, "trials.json.tmp"), os.path.join(out, "trials.json"))
    with open(os.path.join(out, "trials.csv.tmp"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "state", "value"] + names + ["steps", "train_seconds", "seconds", "run_dir", "error"])
        for t in trials:
            w.writerow([t["number"], t["state"], "" if t["value"] is None else repr(t["value"])] +
                       [t["params"].get(n, "") for n in names] +
                       ["" if t[k] is None else t[k] for k in ("steps", "train_seconds", "seconds", "run_dir")] +
                       [(t["error"] or "").replace("\n", " | ")])
    os.replace(os.path.join(out, "trials.csv.tmp"), os.path.join(out, "trials.csv"))
    importance, why = None, None
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    if len(complete) < 2 or len(names) < 1:
        why = "fewer than 2 complete trials"
    else:
        try:
            importance = dict(optuna.importance.get_param_importances(study))
        except Exception as e:  # e.g. fANOVA needs scikit-learn, which may be missing
            why = ("%s: %s" % (type(e).__name__, e)).rstrip(". ")
    with open(os.path.join(out, "importance.json"), "w") as f:
        json.dump({"importance": importance, "why_none": why}, f, indent=1)


def main(argv):
    if len(argv) < 2:
        fail("usage: hpt_tune.py SPEC.json [--export-only]")
    spec = read_json(argv[1])
    if spec is None:
        fail("cannot read the spec %s" % argv[1])
    if "--export-only" in argv[2:]:
        try:
            study = optuna.load_study(study_name=spec["study_name"], storage=spec["storage"])
        except KeyError:
            fail("no study %s in %s yet: run `hpt tune` first" % (spec["study_name"], spec["storage"]))
        export(spec, study)
        return 0
    tuner = Tuner(spec)
    tuner.run()
    export(spec, tuner.study)
    if tuner.stop_signal:
        return 128 + tuner.stop_signal
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
