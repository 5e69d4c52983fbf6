#!/usr/bin/env bash
# Item 3 of issue 15: GIFA with the shipped igft-labeler vs the embedding labeler, on data the
# labeler was not trained on: the paper's toy conversations and the first dialogues of two SGD dev
# services (Restaurants_2: domain seen in training under other services; Weather_1: domain unseen).
#   bash benchmarks/offline_labeler_eval.sh [OUT] [SGD_DIALOGUES] [WHICH: all|emb|gifa] [LLM] [DATA: all|toy|sgd|select-toy|select-sgd]
# LLM: the GIFA model spec, default the shipped adapter (local:igft-labeler); hf:runs/X/adapter for a new run.
# DATA: which datasets; two processes (toy, sgd) into the same OUT use both cores of a 2-core CPU.
# DATA=select-toy / select-sgd: the selection sets, never the evaluation ones: igft's own toy conversations (in no
# adapter's training data) and the first dialogues of the held-out training services Hotels_3, Music_2.
set -euo pipefail
OUT=${1:-runs/ol_eval}
N_SGD=${2:-3}
WHICH=${3:-all}
LLM=${4:-local:igft-labeler}
DATA=${5:-all}
EXT=../shared/external
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg OMP_NUM_THREADS=1
mkdir -p "$OUT"
python - "$OUT" "$N_SGD" <<'PY'
import sys
from igft.data import load_conversations
out, n = sys.argv[1], int(sys.argv[2])
for split, service in (("dev", "Restaurants_2"), ("dev", "Weather_1"), ("train", "Hotels_3"), ("train", "Music_2")):
    load_conversations(f"../shared/external/sgd/{split}/{service}.csv").head(n).save(f"{out}/sgd_{service}.csv")
PY
run() {  # name data labeler-args...
  local name=$1 data=$2; shift 2
  local start=$(date +%s.%N)
  igft label --mode live --data "$data" --out "$OUT/$name" --overwrite --no-progress --max-failed-share 1.0 "$@" \
      > "$OUT/$name.log" 2>&1 || echo "igft label exited $? for $name" >> "$OUT/$name.log"
  local end=$(date +%s.%N)
  echo "{\"name\": \"$name\", \"wall_s\": $(python -c "print(round($end-$start,1))")}" > "$OUT/$name.wall.json"
  igft evaluate --gold "$data" --pred "$OUT/$name/labels.csv" --json > "$OUT/$name.eval.json"
  echo "$name: $(cat "$OUT/$name.eval.json" | head -c 400)"
}
TOY=$EXT/paper_runs/toy_conversations.csv
case $DATA in
  all) SETS=("$TOY" "$OUT/sgd_Restaurants_2.csv" "$OUT/sgd_Weather_1.csv") ;;
  toy) SETS=("$TOY") ;;
  sgd) SETS=("$OUT/sgd_Restaurants_2.csv" "$OUT/sgd_Weather_1.csv") ;;
  select-toy) SETS=(dummy_data/toy_conversations.csv) ;;
  select-sgd) SETS=("$OUT/sgd_Hotels_3.csv" "$OUT/sgd_Music_2.csv") ;;
  *) echo "DATA must be all, toy, sgd, select-toy or select-sgd, not '$DATA'" >&2; exit 2 ;;
esac
[ "$WHICH" != gifa ] && for data in "${SETS[@]}"; do
  tag=$(basename "$data" .csv)
  run "emb_$tag" "$data" --labeler embeddings --embedder local:minilm
done
[ "$WHICH" != emb ] && for data in "${SETS[@]}"; do
  tag=$(basename "$data" .csv)
  run "gifa_$tag" "$data" --labeler gifa --llm "$LLM" --embedder local:minilm
done
true
