#!/bin/bash
# Why the weight mirror does not train BioTorch's LeNet: B's lag behind W, isolated with
# symmetric alignment (B ← (1 − η_B) B + η_B W, which reads W: B is W averaged over ≈ 1/η_B
# steps, with no noise) and the mirror at two η_B. Binary 46b4730, one thread, seed 0.
cd "$(git rev-parse --show-toplevel)"
B=${NOWT:-nowt}   # these runs: a build of 46b4730
O=runs/fm-mirror-lag
P="--preset fashion-mnist-lenet --threads 1"
# Part 1: the grid's lr 0.03 (backprop's chosen rate), 2 epochs.
$B compare $P --rules bp --lr 0.03 --epochs 2 --out $O/lr0.03-bp
$B compare $P --rules sa --grid rules.sa.lr=0.99,0.5,0.1,0.01 --lr 0.03 --epochs 2 --out $O/lr0.03-sa
$B compare $P --rules wm --grid rules.wm.lr=0.1,0.01 --lr 0.03 --epochs 2 --out $O/lr0.03-wm
# Part 2: lr 0.001 (the mirror's lowest grid rate), 8 epochs.
$B compare $P --rules bp --lr 0.001 --epochs 8 --out $O/lr0.001-bp
$B compare $P --rules sa --grid rules.sa.lr=0.99,0.01 --lr 0.001 --epochs 8 --out $O/lr0.001-sa
$B compare $P --rules wm --grid rules.wm.lr=0.1,0.01 --lr 0.001 --epochs 8 --out $O/lr0.001-wm
