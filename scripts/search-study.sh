#!/usr/bin/env bash
# The searched-vs-released study (issue 25), resumable step by step:
#
#   1. search: supernet + regularized evolution at each budget, at CNet1's depth (L = 6) so the
#      winner and CNet1 have the same (depth, width); the supernet is saved and reused on a rerun.
#   2. τ study (at TAU_BUDGET): `study pick` chooses architectures spread evenly over the
#      search log's score range (best and worst included), random draws from the search
#      space's prior and CNet1 (deterministic from TAU_SEED); `score` scores them with the saved
#      supernet; each is trained standalone with the same short schedule (TAU_EPOCHS, one cosine
#      decay); `study tau` reports Kendall's τ-b with a 95 % bootstrap interval, table + SVG.
#   3. paired comparison at each budget: the search's winner and CNet1 at the same (L, C), same
#      recipe, same time budget (BUDGET_S each), side by side (one thread each), from scratch,
#      for each seed in SEEDS; exported, fixed point checked on the whole test set; `study
#      paired` tabulates them (mean ± sd over seeds).
#
# Budgets and limits count CPU seconds of each process by default (CLOCK=cpu): on a machine
# shared with other work, at `nice -n 19`, a wall-clock budget would buy whatever CPU the others
# leave; CPU seconds are the compute actually spent. CLOCK=wall gives the issue's literal
# wall-clock budgets on an otherwise idle machine (the same thing there).
#
#   scripts/search-study.sh [RUN_DIR]       # state in RUN_DIR (default runs/search-study)
#   BUDGET_S=3600 SEEDS="1 2 3" scripts/search-study.sh /work/study-runs
#   ORDER="paired tau" scripts/search-study.sh /work/study-runs   # comparison before the τ runs
#
# Rerunning the same command resumes: a finished step is skipped (its output exists), a search
# reuses its saved supernet, a training run continues from its last epoch checkpoint. Results
# (logs, picks, scores, tables, plots) are copied to RESULTS (default search/results) after each
# step, tables marked partial until every run behind them has finished.
#
# Time on 2 idle cores with the defaults: two searches side by side (SEARCH_S = 1 h), the τ
# trainings (12 × TAU_EPOCHS epochs, two at a time, about 1 h), then 4 pairs × BUDGET_S (2 h)
# and the fixed-point checks: about 4–5 h.
# The whole script is one brace group, parsed before anything runs, so that editing this file
# (a checkout, a merge) cannot change a study that is running from it.
{
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# Started under setsid (as search/README.md's resume line does), the study is a session of its
# own, so a kernel autogroup of its own, and Linux shares the CPU between autogroups before nice
# applies inside them: `nice -n 19` alone still left the study half of this 2-core machine and
# slowed every benchmark beside it 2x. As its session's leader the script lowers the whole
# autogroup instead (only then: it must not renice a terminal session it merely runs in).
if [ "$(ps -o sid= -p $$ | tr -d ' ')" = "$$" ] && [ -w /proc/self/autogroup ]; then
  echo 19 >/proc/self/autogroup 2>/dev/null || true
fi
run=$(realpath -m "${1:-runs/search-study}")
results=$(realpath -m "${RESULTS:-search/results}")
budgets=${BUDGETS:-24576 49152}   # ReLU budgets of the searches and the paired comparison
tau_budget=${TAU_BUDGET:-24576}   # budget of the τ study (one of BUDGETS)
search_s=${SEARCH_S:-3600}        # wall-clock limit of each search (supernet + evolution)
supernet_epochs=${SUPERNET_EPOCHS:-10}
supernet_fraction=${SUPERNET_FRACTION:-0.5}
candidates=${CANDIDATES:-400}     # evolution's cap on candidates
ops_flag=${OPS_FLAG:---dense-only} # final nets are dense; "" searches the six ENAS ops
tau_spread=${TAU_SPREAD:-8}
tau_random=${TAU_RANDOM:-3}
tau_seed=${TAU_SEED:-1}
tau_epochs=${TAU_EPOCHS:-4}
budget_s=${BUDGET_S:-1800}        # training budget of each paired run, in seconds on CLOCK
clock=${CLOCK:-cpu}               # cpu: budgets count each process's CPU time; wall: wall time
seeds=${SEEDS:-1 2}
order=${ORDER:-tau paired}        # the steps after the searches, in order ("paired tau" puts the
                                  # comparison first when time is short)
depth=6                           # CNet1's depth
# Extra arguments of every search and training, e.g. a smoke test of the whole pipeline:
#   SEARCH_ARGS="--val-per-class 20" TRAIN_ARGS="--train-per-class 20 --val-per-class 10"
read -r -a search_args <<<"${SEARCH_ARGS:-}"
read -r -a train_args <<<"${TRAIN_ARGS:-}"

export LIBTORCH=${LIBTORCH:-$repo/.venv/lib/python3.11/site-packages/torch}
export LIBTORCH_BYPASS_VERSION_CHECK=1
export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# One thread per process: torch's intra-op pool and OpenMP.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ ! -d "$LIBTORCH/lib" ]; then
  echo "libtorch not found at $LIBTORCH (run scripts/setup.sh or set LIBTORCH)" >&2
  exit 1
fi
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -p cryptonas-search --features tch
fi
mkdir -p "$run/bin" "$results"
# One study per run directory at a time (a second one would train the same runs twice).
exec 9>"$run/.lock"
if ! flock -n 9; then
  echo "another search-study.sh is running in $run" >&2
  exit 1
fi
# The study runs its own copy: a later `cargo build`/`cargo test --release -p cryptonas-search`
# without `--features tch` replaces target/release/cryptonas-search, and the study's next step
# would then fail (it happened). Each start copies the binary built (or found) above.
cp "${CARGO_TARGET_DIR:-$repo/target}/release/cryptonas-search" "$run/bin/cryptonas-search.tmp"
mv "$run/bin/cryptonas-search.tmp" "$run/bin/cryptonas-search"
bin="$run/bin/cryptonas-search"
say() { echo "[study $(date -u +%H:%M:%S)] $*"; }

# The width C that puts L = 6 at exactly the budget (L·C·1024 ReLUs on 32×32).
width_of() {
  local b=$1
  if (( b % (depth * 1024) != 0 )); then
    echo "budget $b is not a multiple of $((depth * 1024)) (L = $depth)" >&2
    return 1
  fi
  echo $(( b / (depth * 1024) ))
}
tag_of() { echo "$1"; }

# Runs a training to completion (resuming its checkpoint) unless it already finished.
# train_run DIR LOG ARGS...: DIR/done marks a finished run.
train_run() {
  local dir=$1 log=$2; shift 2
  [ -f "$dir/done" ] && return 0
  mkdir -p "$dir"
  local resume=()
  [ -f "$dir/checkpoint.safetensors" ] && [ -f "$dir/state.json" ] && resume=(--resume)
  say "train $(basename "$dir") ${resume[*]}"
  if "$bin" train --out "$dir" --threads 1 "$@" "${train_args[@]}" "${resume[@]}" >>"$log" 2>&1; then
    touch "$dir/done"
    say "done $(basename "$dir")"
  else
    say "FAILED $(basename "$dir") (see $log)"
    return 1
  fi
}

# ---- 1. searches (side by side) ---------------------------------------------------------------
search_one() {
  local b=$1 c tag dir
  c=$(width_of "$b"); tag=$(tag_of "$b"); dir="$run/search-$tag"
  mkdir -p "$dir"
  if [ ! -f "$dir/result.json" ]; then
    # An interrupted supernet training resumes from its checkpoint; an interrupted evolution
    # replays its log (--resume) and goes on. A log without a saved supernet cannot be resumed.
    [ -f "$dir/supernet/supernet.json" ] || rm -f "$dir/log.jsonl"
    say "search $tag (L = $depth, C = $c): supernet width $c, $supernet_epochs epochs, limit ${search_s} s"
    # shellcheck disable=SC2086
    "$bin" search --budget "$b" --depth "$depth" --time-limit "$search_s" \
      --supernet-epochs "$supernet_epochs" --supernet-fraction "$supernet_fraction" \
      --proxy-width "$c" --population 20 --tournament 5 --max-candidates "$candidates" \
      $ops_flag --seed 1 --threads 1 --clock "$clock" --supernet-dir "$dir/supernet" --resume \
      --log "$dir/log.jsonl" --result "$dir/result.tmp.json" "${search_args[@]}" \
      >>"$dir/console.txt" 2>&1
    mv "$dir/result.tmp.json" "$dir/result.json"
    say "search $tag done"
  fi
  cp "$dir/log.jsonl" "$results/study-search-$tag-log.jsonl"
  cp "$dir/result.json" "$results/study-search-$tag-result.json"
  cp "$dir/supernet/supernet.json" "$results/study-search-$tag-supernet.json"
}
declare -A search_pid
for b in $budgets; do
  search_one "$b" &
  search_pid[$b]=$!
done
# Waits for the search at budget $1 and stops the study if it failed. A pid is waited for once;
# one that a plain `wait` already reaped (the τ step waits for everything) reads as 127, and its
# result.json is what the next step checks.
wait_search() {
  local pid=${search_pid[$1]:-} rc=0
  [ -n "$pid" ] || return 0
  search_pid[$1]=
  wait "$pid" 2>/dev/null || rc=$?
  (( rc == 0 || rc == 127 )) || exit 1
}
# At most two processes at once, searches included.
slot() { while (( $(jobs -rp | wc -l) >= 2 )); do wait -n || true; tau_report; done; }

# ---- 2. τ study (once its budget's search is done; the other searches go on) ----------------
tau_tag=$(tag_of "$tau_budget"); tau_c=$(width_of "$tau_budget")
tau_report() { :; }
tau_step() {
  wait_search "$tau_budget"
  tau="$run/tau-$tau_tag"
  mkdir -p "$tau/runs"
  if [ ! -f "$tau/picks.jsonl" ]; then
    # shellcheck disable=SC2086
    "$bin" study pick --log "$run/search-$tau_tag/log.jsonl" --spread "$tau_spread" \
      --random "$tau_random" --seed "$tau_seed" $ops_flag --out "$tau/picks.tmp.jsonl"
    mv "$tau/picks.tmp.jsonl" "$tau/picks.jsonl"
  fi
  if [ ! -f "$tau/scores.jsonl" ]; then
    "$bin" score --supernet "$run/search-$tau_tag/supernet" --arcs "$tau/picks.jsonl" \
      --threads 1 --out "$tau/scores.tmp.jsonl" 2>>"$tau/score.log"
    mv "$tau/scores.tmp.jsonl" "$tau/scores.jsonl"
  fi
  cp "$tau/picks.jsonl" "$results/study-tau-$tau_tag-picks.jsonl"
  cp "$tau/scores.jsonl" "$results/study-tau-$tau_tag-scores.jsonl"
  tau_report() {
    local n_done n_all title
    n_all=$(grep -c . "$tau/picks.jsonl")
    n_done=$(find "$tau/runs" -name done | wc -l)
    title="Supernet ranking at $tau_budget ReLUs (L = $depth, C = $tau_c, $tau_epochs epochs each)"
    (( n_done < n_all )) && title="PARTIAL ($n_done of $n_all trained): $title"
    if (( n_done >= 3 )); then
      "$bin" study tau --scores "$tau/scores.jsonl" --runs "$tau/runs" --title "$title" \
        --out "$results/study-tau-$tau_tag" >/dev/null || true
    fi
  }
  # Standalone trainings in the order of the picks, sharing the two slots with the other searches.
  mapfile -t labels < <(sed -n 's/.*"label":"\([^"]*\)".*/\1/p' "$tau/picks.jsonl")
  mapfile -t arcs < <(sed -n 's/.*"arc":"\([^"]*\)".*/\1/p' "$tau/picks.jsonl")
  for i in "${!labels[@]}"; do
    d="$tau/runs/${labels[$i]}"
    [ -f "$d/done" ] && continue
    slot
    # Same short schedule for every architecture: TAU_EPOCHS epochs, one cosine decay.
    train_run "$d" "$tau/runs/${labels[$i]}.log" --arch "${arcs[$i]}" --width "$tau_c" \
      --epochs "$tau_epochs" --t0 "$tau_epochs" --seed 1 &
  done
  # The paired comparison needs every search; the τ trainings finish meanwhile.
  wait || true
  tau_report
}

# ---- 3. paired comparison ---------------------------------------------------------------------
paired_step() {
  # Every search must be done (the τ trainings may still run when the paired step comes first).
  for b in $budgets; do wait_search "$b"; done
  models="$run/models"
  mkdir -p "$models"
  paired_report() {
    local files=("$models"/*-s*.json) n_done n_all title
    [ -e "${files[0]}" ] || return 0
    n_all=$(( $(wc -w <<<"$budgets") * $(wc -w <<<"$seeds") * 2 ))
    n_done=$(find "$run/paired" -name checked | wc -l)
    "$bin" study paired "${files[@]}" --out "$run/paired-table.md" \
      --svg "$results/study-paired.svg" >/dev/null || return 0
    {
      echo "## Searched vs CNet1 at equal budgets"
      echo
      if (( n_done < n_all )); then echo "**PARTIAL: $n_done of $n_all runs finished.**"; echo; fi
      echo "Each run: L = $depth, same recipe (SGD Nesterov, one cosine decay of lr 0.05 → 0.001"
      echo "over the time budget, wd 2e-4, dropout 0.5, batch 100, pad-crop + flip), $budget_s s"
      echo "($clock clock) of training, one thread, from scratch; searched and CNet1 of one seed side"
      echo "by side. \"train s\" is wall time; epochs are rounded."
      echo "Fixed point: k = 32 at the exported calibration; \"on images\" 10000 = the whole test set."
      echo
      cat "$run/paired-table.md"
    } >"$results/study-paired.md"
  }
  # Seeds outermost: every budget gets its first pair before any budget gets a second.
  for s in $seeds; do
    for b in $budgets; do
      c=$(width_of "$b"); tag=$(tag_of "$b")
      searched=$(sed -n 's/.*"final_arc": "\([^"]*\)".*/\1/p' "$run/search-$tag/result.json")
      for arm in searched cnet1; do
        name="$arm-$b-s$s"
        arch=$searched; [ "$arm" = cnet1 ] && arch=cnet1
        # Time decides the schedule: one cosine decay over BUDGET_S (--epochs is only an upper
        # bound that the budget never lets the run reach).
        train_run "$run/paired/$name" "$run/paired/$name.log" --arch "$arch" --width "$c" \
          --epochs 1000 --t0 1000 --time-budget "$budget_s" --clock "$clock" --seed "$s" \
          --export "$models" --name "$name" --fixed-images 200 &
      done
      wait || true
      for arm in searched cnet1; do
        name="$arm-$b-s$s"
        d="$run/paired/$name"
        if [ -f "$d/done" ] && [ ! -f "$d/checked" ]; then
          say "check-fixed $name (whole test set)"
          "$bin" check-fixed "$models/$name.json" >>"$d.log" 2>&1 && touch "$d/checked"
        fi
      done
      paired_report
    done
  done
  paired_report
}

# ---- the steps, in ORDER ----------------------------------------------------------------------
for step in $order; do
  case $step in
    tau) tau_step ;;
    paired) paired_step ;;
    *) echo "unknown step '$step' in ORDER (tau, paired)" >&2; exit 1 ;;
  esac
done
say "study complete: $results"
exit 0
}
