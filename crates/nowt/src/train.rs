//! The training loop: forward → loss → backward(rule) → SGD step → the rule's mirror phase,
//! and the per-epoch measurements of DESIGN.md §5.

use std::time::Instant;

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::config::{PretrainLabels, TrainConfig};
use crate::data::prefetch::Prefetch;
use crate::data::{Dataset, Image, Split};
use crate::dist::{share, Collective, Solo};
use crate::layers::{softmax_cross_entropy, target_error};
use crate::metrics::{angle_deg, sign_concordance, top_k_correct, LayerRecord};
use crate::models::Network;
use crate::optim::{Schedule, Step};
use crate::params::Init;
use crate::rules::{self, Backprop, Rule};
use crate::tensor::{Real, Tensor};
use crate::{Error, Result};

/// RNG streams of a run (see [`crate::rng`]).
pub const STREAM_WEIGHTS: u64 = 0;
pub const STREAM_FEEDBACK: u64 = 1;
pub const STREAM_SHUFFLE: u64 = 2;
pub const STREAM_MIRROR: u64 = 3;
pub const STREAM_AUGMENT: u64 = 4;
/// The rule's own initialisation (direct feedback alignment's `D`).
pub const STREAM_RULE_INIT: u64 = 5;
/// Noise pre-training: step `k`'s inputs and labels come from stream `6 + (k << 8)`, a
/// generator of their own, so the phase can be replayed from any step.
pub const STREAM_PRETRAIN: u64 = 6;

/// Loss and error rates of one pass over a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub loss: f64,
    pub top1_err: f64,
    /// Only for datasets with at least 10 classes.
    pub top5_err: Option<f64>,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// The learning rate at the epoch's last step.
    pub lr: f64,
    /// Running mean over the epoch's steps, in training mode.
    pub train: Evaluation,
    pub val: Option<Evaluation>,
    pub test: Evaluation,
    /// Weight layers, bottom to top.
    pub layers: Vec<LayerRecord>,
    /// Timing (varies run to run): wall seconds of the epoch including evaluation, training
    /// images per second, and seconds training waited for batches from the data thread.
    pub seconds: f64,
    pub images_per_s: f64,
    #[serde(default)]
    pub data_wait_s: f64,
}

/// What the loop reports while it runs. Each event carries the state as it is after the
/// event, consistent for a checkpoint.
pub enum Event<'a> {
    /// The rule's warm-up (`batches` noise batches on `B`, before the first step) has run
    /// `done` of its batches (0: it is about to start). Stopped here, the warm-up is undone —
    /// `B` and the noise stream are as before it — and runs whole on the next start.
    WarmUp { done: usize, batches: usize },
    /// Training is about to start (or resume).
    Started {
        epochs: usize,
        steps_per_epoch: usize,
        state: &'a TrainState,
    },
    /// A training step finished (`epoch` and `step` 1-based).
    Step {
        epoch: usize,
        step: usize,
        loss: f64,
        images_per_s: f64,
        state: &'a TrainState,
    },
    /// Epoch `epoch`'s (1-based) training steps are done; its evaluation (test, validation
    /// and the layers' angles) starts, with nothing reported until [`Event::Epoch`].
    Evaluating { epoch: usize },
    /// An epoch finished and was measured.
    Epoch {
        record: &'a EpochRecord,
        state: &'a TrainState,
    },
    /// Noise pre-training measured the layers (before its first step, then every tenth of the
    /// phase and at its end) of `steps` steps.
    Pretrain {
        record: &'a PretrainRecord,
        steps: usize,
    },
    /// The layers measured on the probe batch within training, every
    /// [`TrainConfig::probe_every`] steps and before the first.
    Probe { record: &'a ProbeRecord },
}

/// One measurement of noise pre-training (`pretrain.jsonl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PretrainRecord {
    /// Noise steps done (0: before the first).
    pub step: usize,
    /// The mean training loss on noise since the last record; `None` before the first step.
    pub loss: Option<f64>,
    /// Every weight layer's measurements, as in an epoch's record (`∠(W, M)` is the alignment
    /// the phase is for; the δ-angles are on the data's probe batch).
    pub layers: Vec<LayerRecord>,
    /// Seconds since the phase began.
    pub seconds: f64,
}

/// One measurement within training (`probes.jsonl`, every [`TrainConfig::probe_every`] steps).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// Training steps done in all (0: before the first), `epoch · steps per epoch + step`.
    pub global_step: usize,
    /// The epoch in progress (1-based) and its steps done.
    pub epoch: usize,
    pub step: usize,
    /// The learning rate of the last step (`None` before the first).
    pub lr: Option<f64>,
    /// The epoch's mean training loss so far (at the epoch's last step, its record's training
    /// loss); `None` before the epoch's first step.
    pub loss: Option<f64>,
    /// Every weight layer's measurements, as in an epoch's record.
    pub layers: Vec<LayerRecord>,
    /// The run's seconds so far (its warm-up's included).
    pub seconds: f64,
}

/// Noise pre-training's step `k` (0-based): rank `rank`'s share (of `size`) of a global batch
/// of `cfg.batch_size` inputs shaped `[batch, sample…]` (`cfg.pretrain_noise` with std
/// `cfg.pretrain_noise_std`) and their labels (`cfg.pretrain_labels` over `classes`), drawn
/// from the step's own stream: the same on every rank and for any thread count.
pub fn noise_batch(
    cfg: &TrainConfig,
    k: usize,
    sample: &[usize],
    classes: usize,
    (rank, size): (usize, usize),
) -> (Tensor<f32>, Vec<u32>) {
    use rand::Rng as _;
    let mut rng = crate::rng(cfg.seed, STREAM_PRETRAIN + ((k as u64) << 8));
    let n = cfg.batch_size;
    let shape: Vec<usize> = std::iter::once(n).chain(sample.iter().copied()).collect();
    let std = cfg.pretrain_noise_std;
    let x: Tensor<f32> = match cfg.pretrain_noise {
        rules::MirrorNoise::Gaussian => crate::noise::gaussian(&shape, std, &mut rng),
        rules::MirrorNoise::Uniform => crate::noise::uniform(&shape, 3f64.sqrt() * std, &mut rng),
    };
    let labels: Vec<u32> = match cfg.pretrain_labels {
        PretrainLabels::Uniform => (0..n)
            .map(|_| rng.random_range(0..classes as u32))
            .collect(),
        PretrainLabels::Balanced => {
            let mut l: Vec<u32> = (0..n).map(|i| (i % classes) as u32).collect();
            l.shuffle(&mut rng);
            l
        }
    };
    let mine = crate::dist::share(n, rank, size);
    let per = x.len() / n;
    let mut rows = shape;
    rows[0] = mine.len();
    let data = x.data()[mine.start * per..mine.end * per].to_vec();
    (Tensor::from_vec(&rows, data), labels[mine].to_vec())
}

/// The epoch chosen on the validation split, and its errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub epoch: usize,
    pub val_top1_err: f64,
    /// The test error at that epoch: the honest estimate of the selected model.
    pub test_top1_err: f64,
}

/// The end of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub epochs: usize,
    /// The lowest test error seen and its epoch: for orientation only (choosing an epoch on the
    /// test set would be selection on the test set).
    pub best_test_top1_err: f64,
    pub best_epoch: usize,
    /// Model selection on the validation split (`val_fraction > 0`); `None`: none was done.
    #[serde(default)]
    pub selected: Option<Selection>,
    /// Wall seconds over every process that trained the run: the warm-up, training and every
    /// evaluation.
    pub total_seconds: f64,
    /// Of which the rule's warm-up before the first step (0 for rules without one; `None` in
    /// summaries written before the warm-up was timed).
    #[serde(default)]
    pub warmup_seconds: Option<f64>,
    pub last: EpochRecord,
}

/// Builds the configured model in precision `T`. `W` and `B` come from their own RNG streams,
/// so `W₀` is the same under every rule; the rule then initialises `B` its own way.
///
/// # Panics
/// If the model cannot take `input` (a run resolves its model first,
/// [`TrainConfig::model_parts`], and refuses such a config with the layer named).
pub fn build_model<T: Real>(
    cfg: &TrainConfig,
    input: Image,
    classes: usize,
    rule: &dyn Rule<T>,
) -> Network<T> {
    let parts = cfg
        .model_parts(input, classes)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut rng_w = crate::rng(cfg.seed, STREAM_WEIGHTS);
    let mut rng_b = crate::rng(cfg.seed, STREAM_FEEDBACK);
    let mut net = crate::models::build(&parts, &mut rng_w, &mut rng_b);
    if cfg.init != Init::He {
        // Drawn again from the start of the same streams, so `W₀` stays the same under every rule.
        let mut rng_w = crate::rng(cfg.seed, STREAM_WEIGHTS);
        let mut rng_b = crate::rng(cfg.seed, STREAM_FEEDBACK);
        crate::models::redraw(&mut net, cfg.init, &mut rng_w, &mut rng_b);
    }
    if cfg.bias_init != 0.0 {
        let b0 = T::of(cfg.bias_init);
        for layer in net.weight_layers_mut() {
            if let Some(b) = layer.params_mut().bias.as_mut() {
                b.apply(|_| b0);
            }
        }
    }
    let mut init = rules::FeedbackInit {
        classes,
        rng: crate::rng(cfg.seed, STREAM_RULE_INIT),
    };
    let align = cfg.init_alignment > 0.0 && rules::carries_through_b(rule);
    for layer in net.weight_layers_mut() {
        rule.init_feedback(layer.params_mut(), &mut init);
        if align {
            rules::soft_align(layer.params_mut(), cfg.init_alignment);
        }
    }
    net
}

/// One training step on a batch: forward, loss, backward under `rule`, the optimiser's update,
/// and the rule's after-step work. Returns the mean loss and the logits, or — if the loss is not
/// finite — where non-finite values first appeared, with nothing updated.
pub fn train_step<T: Real, O: Step + ?Sized>(
    net: &mut Network<T>,
    rule: &dyn Rule<T>,
    opt: &O,
    x: &Tensor<T>,
    labels: &[u32],
    lr: f64,
    rng_mirror: &mut crate::Rng,
) -> std::result::Result<(f64, Tensor<T>), String> {
    let mut outs = net.forward(x, true);
    let logits = outs.pop().expect("a network has layers");
    let (loss, delta) = softmax_cross_entropy(&logits, labels);
    let target = target_error(labels, logits.cols(), 1.0 / labels.len() as f64);
    outs.push(logits);
    if !loss.is_finite() {
        return Err(net
            .first_non_finite(&outs)
            .unwrap_or_else(|| "the loss".to_string()));
    }
    net.backward(x, &outs, delta, Some(&target), rule, None);
    opt.apply(net, rule, lr);
    rule.after_step(&mut net.weight_layers_mut(), rng_mirror);
    Ok((loss.f64(), outs.pop().expect("logits")))
}

/// What one training step of a data-parallel run measured over the whole global batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepSums {
    /// The mean loss over the global batch.
    pub loss: f64,
    pub top1: usize,
    pub top5: usize,
}

/// [`train_step`] on rank `comm.rank()` of `comm.size()` ([`crate::dist`]): `x`, `labels` are
/// this rank's share of a global batch of `global` samples. The ranks agree on the global loss
/// and top-k counts, and on stopping together if any rank's loss is not finite; each rank's
/// `δ` at the logits is scaled by `n_r / N`, so the summed gradients of `W`, the biases and
/// batch norm's parameters are the 1-rank run's mean gradient; batch norm's running statistics
/// are averaged over the ranks. With one rank this is [`train_step`], bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn train_step_on<O: Step + ?Sized>(
    comm: &dyn Collective,
    global: usize,
    net: &mut Network<f32>,
    rule: &dyn Rule<f32>,
    opt: &O,
    x: &Tensor<f32>,
    labels: &[u32],
    lr: f64,
    rng_mirror: &mut crate::Rng,
) -> std::result::Result<StepSums, String> {
    if comm.size() == 1 {
        let (loss, logits) = train_step(net, rule, opt, x, labels, lr, rng_mirror)?;
        return Ok(StepSums {
            loss,
            top1: top_k_correct(&logits, labels, 1),
            top5: top_k_correct(&logits, labels, 5),
        });
    }
    let mut outs = net.forward(x, true);
    let logits = outs.pop().expect("a network has layers");
    let (loss, mut delta) = softmax_cross_entropy(&logits, labels);
    let n = labels.len();
    // [Σ loss, top-1, top-5, then one "not finite" flag per rank]
    let mut sums = vec![0.0; 3 + comm.size()];
    sums[0] = loss as f64 * n as f64;
    sums[1] = top_k_correct(&logits, labels, 1) as f64;
    sums[2] = top_k_correct(&logits, labels, 5) as f64;
    sums[3 + comm.rank()] = f64::from(u8::from(!loss.is_finite()));
    outs.push(logits);
    comm.sum(&mut sums);
    if let Some(k) = sums[3..].iter().position(|&f| f > 0.0) {
        return Err(if loss.is_finite() {
            format!("rank {k}'s batch")
        } else {
            net.first_non_finite(&outs)
                .unwrap_or_else(|| "the loss".to_string())
        });
    }
    let scale = (n as f64 / global as f64) as f32;
    delta.apply(|d| d * scale);
    let classes = outs.last().expect("logits").cols();
    let target = target_error(labels, classes, 1.0 / global as f64);
    net.backward(x, &outs, delta, Some(&target), rule, None);
    reduce_gradients(net, comm);
    opt.apply(net, rule, lr);
    rule.after_step(&mut net.weight_layers_mut(), rng_mirror);
    Ok(StepSums {
        loss: sums[0] / global as f64,
        top1: sums[1] as usize,
        top5: sums[2] as usize,
    })
}

/// Sums every rank's gradients of `W`, the biases and the plain parameters (one collective for
/// all of them), and averages batch norm's running statistics.
fn reduce_gradients(net: &mut Network<f32>, comm: &dyn Collective) {
    let mut buf: Vec<f32> = Vec::new();
    for l in net.weight_layers() {
        let p = l.params();
        buf.extend_from_slice(p.grad_w.data());
        if let Some(g) = &p.grad_bias {
            buf.extend_from_slice(g.data());
        }
    }
    for p in net.params() {
        buf.extend_from_slice(p.grad.data());
    }
    let grads = buf.len();
    for (_, b) in net.buffers() {
        buf.extend_from_slice(b.data());
    }
    comm.sum_f32(&mut buf);
    let inv = 1.0 / comm.size() as f32;
    for v in &mut buf[grads..] {
        *v *= inv;
    }
    let mut at = 0;
    let mut take = |t: &mut Tensor<f32>| {
        let n = t.len();
        t.data_mut().copy_from_slice(&buf[at..at + n]);
        at += n;
    };
    for l in net.weight_layers_mut() {
        let p = l.params_mut();
        take(&mut p.grad_w);
        if let Some(g) = p.grad_bias.as_mut() {
            take(g);
        }
    }
    for p in net.params_mut() {
        take(&mut p.grad);
    }
    for (_, b) in net.buffers_mut() {
        take(b);
    }
}

/// Values of input per evaluation chunk (341 CIFAR images; 6 at 224×224), which bounds the
/// memory of the largest activation.
const EVAL_CHUNK_VALUES: usize = 1 << 20;

/// Loss and top-1/top-5 error over `data`, in evaluation mode.
pub fn evaluate(net: &mut Network<f32>, data: &Dataset) -> Result<Evaluation> {
    evaluate_on(&Solo, net, data)
}

/// The network's logits for every sample of `data` in evaluation mode, `[len, classes]`
/// row-major, computed in chunks as [`evaluate`] does.
pub fn logits(net: &mut Network<f32>, data: &Dataset) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    let chunk_len = (EVAL_CHUNK_VALUES / data.dim.max(1)).clamp(1, 1000);
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(chunk_len) {
        let (x, _) = data.batch(chunk)?;
        out.extend_from_slice(net.predict(&x, false).data());
    }
    Ok(out)
}

/// [`evaluate`] split over the ranks of `comm`: each evaluates its share of `data`, and the
/// sums are reduced (every rank receives the whole evaluation).
pub fn evaluate_on(
    comm: &dyn Collective,
    net: &mut Network<f32>,
    data: &Dataset,
) -> Result<Evaluation> {
    let mut sums = [0f64; 3];
    let idx: Vec<usize> = share(data.len(), comm.rank(), comm.size()).collect();
    let chunk_len = (EVAL_CHUNK_VALUES / data.dim.max(1)).clamp(1, 1000);
    for chunk in idx.chunks(chunk_len) {
        let (x, y) = data.batch(chunk)?;
        let logits = net.predict(&x, false);
        sums[0] += softmax_cross_entropy(&logits, &y).0 as f64 * chunk.len() as f64;
        sums[1] += top_k_correct(&logits, &y, 1) as f64;
        sums[2] += top_k_correct(&logits, &y, 5) as f64;
    }
    comm.sum(&mut sums);
    let n = data.len().max(1) as f64;
    Ok(Evaluation {
        loss: sums[0] / n,
        top1_err: 1.0 - sums[1] / n,
        top5_err: (data.classes >= 10).then(|| 1.0 - sums[2] / n),
    })
}

/// Per weight layer: `∠(W, M)`, `‖M‖/‖W‖`, sign concordance, and the angle between the rule's
/// `δ_in` and backprop's on the probe batch, both from one forward pass in training mode (batch
/// norm normalises by the probe batch's own statistics, as in every training step; its running
/// statistics are restored afterwards, so measuring changes nothing). `δ_bp` is the full
/// backprop error through every layer above, not the one-step `Wᵀδ` of the paper's code.
/// The first weight layer's `M` carries no error under any rule: its fields are `None`, as are
/// those of an `M` without `W`'s shape (direct feedback alignment's `D` below the output layer;
/// its δ-angle is measured).
pub fn layer_records<T: Real>(
    net: &mut Network<T>,
    rule: &dyn Rule<T>,
    x: &Tensor<T>,
    labels: &[u32],
) -> Vec<LayerRecord> {
    let saved: Vec<Tensor<T>> = net.buffers().into_iter().map(|(_, b)| b.clone()).collect();
    let outs = net.forward(x, true);
    for ((_, b), s) in net.buffers_mut().into_iter().zip(saved) {
        *b = s;
    }
    let logits = outs.last().expect("logits");
    let (_, delta) = softmax_cross_entropy(logits, labels);
    let target = target_error(labels, logits.cols(), 1.0 / labels.len() as f64);
    let (mut d_rule, mut d_bp) = (Vec::new(), Vec::new());
    net.backward(
        x,
        &outs,
        delta.clone(),
        Some(&target),
        rule,
        Some(&mut d_rule),
    );
    net.backward(x, &outs, delta, None, &Backprop, Some(&mut d_bp));
    let find = |recs: &[(String, Option<Tensor<T>>)], name: &str| {
        recs.iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, d)| d.clone())
    };
    let layers = net.weight_layers();
    layers
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            let p = layer.params();
            let m = compared_matrix(rule, p, i, layers.len());
            LayerRecord {
                layer: p.name.clone(),
                weight_angle_deg: m.as_ref().and_then(|m| angle_deg(&p.w, m)),
                delta_angle_deg: match (find(&d_rule, &p.name), find(&d_bp, &p.name)) {
                    (Some(a), Some(b)) => angle_deg(&a, &b),
                    _ => None,
                },
                norm_ratio: m
                    .as_ref()
                    .map(|m| m.norm() / p.w.norm().max(f64::MIN_POSITIVE)),
                sign_concordance: m.as_ref().map(|m| sign_concordance(&p.w, m)),
            }
        })
        .collect()
}

/// The layers measured on the probe batch now, as a record at the state's step (`lr` that of
/// the step just taken).
fn probe_record(
    st: &mut TrainState,
    rule: &dyn Rule<f32>,
    (x, labels): (&Tensor<f32>, &[u32]),
    steps_per_epoch: usize,
    lr: Option<f64>,
) -> ProbeRecord {
    let n = st.sums.seen;
    ProbeRecord {
        global_step: st.epoch * steps_per_epoch + st.step,
        epoch: st.epoch + 1,
        step: st.step,
        lr,
        loss: (n > 0).then(|| st.sums.loss / n as f64),
        layers: layer_records(&mut st.net, rule, x, labels),
        seconds: st.seconds,
    }
}

/// Running sums over the steps of the epoch in progress.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochSums {
    pub loss: f64,
    pub top1: usize,
    pub top5: usize,
    pub seen: usize,
}

/// Everything about a run that changes as it trains: what a checkpoint holds besides the
/// config. Resuming from it continues bit for bit as if never stopped.
pub struct TrainState {
    pub net: Network<f32>,
    /// The epoch in progress, 0-based (`== epochs` when training is over).
    pub epoch: usize,
    /// Steps done in that epoch.
    pub step: usize,
    /// The weight mirror's noise generator (the only generator with state across steps;
    /// each epoch's shuffle is drawn from a generator of its own, see [`epoch_order`]).
    pub rng_mirror: crate::Rng,
    pub sums: EpochSums,
    /// Whether the rule's before-training work (the mirror warm-up) is done.
    pub warmed_up: bool,
    /// Whether noise pre-training is done (true where the run has none).
    pub pretrained: bool,
    /// Lowest test top-1 error so far and its (1-based) epoch (shown, never used to select).
    pub best: Option<(f64, usize)>,
    /// Model selection on the validation split: the epoch (1-based) with the lowest validation
    /// top-1 error so far, as `(val error, epoch, test error at that epoch)`; `None` without one.
    pub selected: Option<(f64, usize, f64)>,
    /// The record of the last finished epoch.
    pub last: Option<EpochRecord>,
    /// Wall seconds the run has trained so far, over every process that trained it (warm-up,
    /// steps and evaluations), as of the last event.
    pub seconds: f64,
    /// Of which the rule's warm-up.
    pub warmup_seconds: f64,
    /// `(‖W₀‖, ‖B₀‖)` of every weight layer, bottom to top: the divergence check's reference
    /// (drawn again from the seed when a checkpoint is loaded).
    pub initial_norms: Vec<(f64, f64)>,
    /// The per-channel `(mean, std)` the run's inputs are normalised by ([`Split::norm`]);
    /// empty where unknown (checkpoints from before it was recorded).
    pub input_norm: Vec<(f32, f32)>,
}

impl TrainState {
    /// The state before the first step of a run with `cfg`.
    pub fn new(cfg: &TrainConfig, input: Image, classes: usize) -> Self {
        let rule = rules::build::<f32>(cfg.rule, &cfg.rules, cfg.batch_size);
        let net = build_model(cfg, input, classes, rule.as_ref());
        let initial_norms = net
            .weight_layers()
            .iter()
            .map(|l| (l.params().w.norm(), l.params().feedback.norm()))
            .collect();
        Self {
            net,
            initial_norms,
            input_norm: Vec::new(),
            epoch: 0,
            step: 0,
            rng_mirror: crate::rng(cfg.seed, STREAM_MIRROR),
            sums: EpochSums::default(),
            warmed_up: false,
            pretrained: cfg.pretrain_noise_steps == 0,
            best: None,
            selected: None,
            last: None,
            seconds: 0.0,
            warmup_seconds: 0.0,
        }
    }

    /// Ends the epoch `record` is of: the best test epoch and the epoch chosen on validation
    /// updated, the sums cleared, the state at the next epoch's start.
    fn end_epoch(&mut self, record: EpochRecord) {
        if self.best.is_none_or(|(e, _)| record.test.top1_err < e) {
            self.best = Some((record.test.top1_err, record.epoch));
        }
        if let Some(v) = &record.val {
            if self.selected.is_none_or(|(e, _, _)| v.top1_err < e) {
                self.selected = Some((v.top1_err, record.epoch, record.test.top1_err));
            }
        }
        self.epoch += 1;
        self.step = 0;
        self.sums = EpochSums::default();
        self.last = Some(record);
    }

    /// The summary of a run of `epochs` epochs, all finished.
    fn summary(&self, epochs: usize) -> Summary {
        let (best_err, best_epoch) = self.best.expect("at least one epoch");
        Summary {
            epochs,
            best_test_top1_err: best_err,
            best_epoch,
            selected: self.selected.map(|(v, epoch, t)| Selection {
                epoch,
                val_top1_err: v,
                test_top1_err: t,
            }),
            total_seconds: self.seconds,
            warmup_seconds: Some(self.warmup_seconds),
            last: self.last.clone().expect("at least one epoch"),
        }
    }
}

/// The rule's warm-up of `B` ([`Rule::before_training`]), one noise batch at a time, each
/// reported as [`Event::WarmUp`]; returns whether it ran to the end. Stopped part-way, every
/// layer's `B` and the noise stream are put back as they were before it, so the state is
/// consistent for a checkpoint and the next start runs the same warm-up whole.
fn warm_up(
    rule: &dyn Rule<f32>,
    st: &mut TrainState,
    on_event: &mut (dyn FnMut(Event) -> ControlFlow<()> + Send),
) -> bool {
    let batches = rule.warmup_batches();
    if batches == 0 {
        return true;
    }
    let feedback = |st: &TrainState| -> Vec<Tensor<f32>> {
        let layers = st.net.weight_layers();
        layers.iter().map(|l| l.params().feedback.clone()).collect()
    };
    let before = (feedback(st), st.rng_mirror.clone());
    for done in 0..batches {
        if on_event(Event::WarmUp { done, batches }).is_break() {
            let (bs, rng) = before;
            for (l, b) in st.net.weight_layers_mut().into_iter().zip(bs) {
                l.params_mut().feedback = b;
            }
            st.rng_mirror = rng;
            return false;
        }
        rule.warmup_batch(&mut st.net.weight_layers_mut(), &mut st.rng_mirror);
    }
    true
}

/// Noise pre-training ([`TrainConfig::pretrain_noise_steps`]): the steps on noise, at the
/// base rate, each measured record reported as [`Event::Pretrain`]. The phase is replayed from
/// its start if a run stops inside it (no checkpoint is written until it is done); its
/// batches come from per-step streams, so the replay is the same phase. A non-finite loss
/// stops the run (as epoch 0).
#[allow(clippy::too_many_arguments)]
fn pretrain(
    cfg: &TrainConfig,
    st: &mut TrainState,
    rule: &dyn rules::Rule<f32>,
    opt: &mut crate::optim::Optimizer,
    comm: &dyn Collective,
    (probe_x, probe_y): (&Tensor<f32>, &[u32]),
    classes: usize,
    on_event: &mut (dyn FnMut(Event) -> ControlFlow<()> + Send),
) -> Result<ControlFlow<()>> {
    let steps = cfg.pretrain_noise_steps;
    let every = (steps / 10).max(1);
    let sample = &probe_x.shape()[1..];
    let start = Instant::now();
    let (mut sum, mut count) = (0.0, 0usize);
    for k in 0..=steps {
        if k > 0 {
            let (x, y) = noise_batch(cfg, k - 1, sample, classes, (comm.rank(), comm.size()));
            opt.set_step(k as u64);
            let sums = train_step_on(
                comm,
                cfg.batch_size,
                &mut st.net,
                rule,
                opt,
                &x,
                &y,
                cfg.lr,
                &mut st.rng_mirror,
            )
            .map_err(|origin| Error::NonFinite {
                epoch: 0,
                step: k,
                origin,
            })?;
            sum += sums.loss;
            count += 1;
        }
        if k == 0 || k % every == 0 || k == steps {
            let record = PretrainRecord {
                step: k,
                loss: (count > 0).then(|| sum / count as f64),
                layers: layer_records(&mut st.net, rule, probe_x, probe_y),
                seconds: start.elapsed().as_secs_f64(),
            };
            (sum, count) = (0.0, 0);
            if on_event(Event::Pretrain {
                record: &record,
                steps,
            })
            .is_break()
            {
                return Ok(ControlFlow::Break(()));
            }
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// The order of the training samples in `epoch` (0-based): a permutation drawn from a
/// generator of its own, so that any epoch can be replayed without replaying the others.
pub fn epoch_order(seed: u64, epoch: usize, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut crate::rng(
        seed,
        STREAM_SHUFFLE + ((epoch as u64) << 8),
    ));
    order
}

/// The weight layer whose `‖W‖` or `‖B‖` has grown most over its initial norm: its name, which
/// matrix, and the factor.
pub fn largest_growth(st: &TrainState) -> Option<(String, &'static str, f64)> {
    st.net
        .weight_layers()
        .iter()
        .zip(&st.initial_norms)
        .flat_map(|(l, &(w0, b0))| {
            let p = l.params();
            let grow = |n: f64, n0: f64| if n0 > 0.0 { n / n0 } else { 1.0 };
            [
                (p.name.clone(), "W", grow(p.w.norm(), w0)),
                (p.name.clone(), "B", grow(p.feedback.norm(), b0)),
            ]
        })
        .max_by(|a, b| a.2.total_cmp(&b.2))
}

/// The divergence check after a step (a run that blows up must not end quietly): the
/// batch loss against `divergence_loss_factor · ln(classes)`, and — every 16 steps and at an
/// epoch's last step — every layer's `‖W‖`, `‖B‖` against `divergence_weight_factor` times its
/// initial norm. Returns what diverged.
fn diverged(
    cfg: &TrainConfig,
    st: &TrainState,
    loss: f64,
    classes: usize,
    check_weights: bool,
) -> Option<String> {
    if cfg.allow_divergence {
        return None;
    }
    let limit = cfg.divergence_loss_factor * (classes.max(2) as f64).ln();
    if loss > limit {
        let grew = largest_growth(st)
            .map(|(name, m, f)| {
                format!("; the layer that grew most is {name} (‖{m}‖ {f:.3}× its initial norm)")
            })
            .unwrap_or_default();
        return Some(format!(
            "the training loss reached {loss:.4e}, over divergence_loss_factor {} × ln({classes}) = {limit:.1}{grew}",
            cfg.divergence_loss_factor
        ));
    }
    if check_weights {
        if let Some((name, m, f)) = largest_growth(st) {
            if f > cfg.divergence_weight_factor {
                return Some(format!(
                    "‖{m}‖ of layer {name} grew to {f:.4e}× its initial norm, over divergence_weight_factor {}",
                    cfg.divergence_weight_factor
                ));
            }
        }
    }
    None
}

/// The rule `cfg` trains `net` with: its rule, with the output layer's own rule where the config
/// gives one.
pub fn training_rule<T: Real>(cfg: &TrainConfig, net: &Network<T>) -> Box<dyn rules::Rule<T>> {
    let output = net.weight_layers().last().map(|l| l.params().name.clone());
    rules::with_output_layer(
        rules::build::<T>(cfg.rule, &cfg.rules, cfg.batch_size),
        cfg.output_layer_rule,
        output.as_deref().unwrap_or_default(),
    )
}

/// `M` of the `i`-th of `layers` weight layers where the metrics compare it with `W`: not the
/// first layer's (it carries no error), and only where `M` stands for `W`
/// ([`Rule::m_stands_for_w`]: not direct feedback alignment's `D` below the output layer).
fn compared_matrix<'a, T: Real>(
    rule: &dyn Rule<T>,
    p: &'a crate::params::WeightParams<T>,
    i: usize,
    layers: usize,
) -> Option<std::borrow::Cow<'a, Tensor<T>>> {
    (i > 0 && rule.m_stands_for_w(p, i + 1 == layers)).then(|| rule.backward_matrix(p))
}

/// Each weight layer's `M` under `cfg`'s rule, as the metrics measure it ([`compared_matrix`]).
/// Named `<layer>.M`.
pub fn rule_matrices(cfg: &TrainConfig, net: &Network<f32>) -> Vec<(String, Tensor<f32>)> {
    let rule = training_rule(cfg, net);
    let layers = net.weight_layers();
    layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let p = l.params();
            let m = compared_matrix(rule.as_ref(), p, i, layers.len())?;
            Some((format!("{}.M", p.name), m.into_owned()))
        })
        .collect()
}

/// Whether to go on after an event.
pub use std::ops::ControlFlow;

/// How [`train`] ended.
pub enum Outcome {
    /// Every epoch ran.
    Finished(Box<Summary>),
    /// The event handler asked to stop (the state is consistent and can be checkpointed).
    Stopped,
}

/// Trains `cfg` on `data` from a fresh state, reporting through `on_event`.
/// See [`train_from`].
pub fn train(
    cfg: &TrainConfig,
    data: &Split,
    on_event: &mut (dyn FnMut(Event) -> ControlFlow<()> + Send),
) -> Result<Summary> {
    let mut state = TrainState::new(cfg, data.train.shape, data.train.classes);
    match train_from(cfg, data, &mut state, on_event)? {
        Outcome::Finished(s) => Ok(*s),
        Outcome::Stopped => Err(Error::config("training", "stopped by its event handler")),
    }
}

/// Trains `cfg` on `data` from `state` (fresh or restored from a checkpoint) to the last epoch.
///
/// Deterministic for a given seed and thread count, and a run resumed from any step's state
/// continues exactly as the uninterrupted run. Stops with [`Error::NonFinite`] at the first
/// non-finite loss, before that step changes anything, and with [`Error::Diverged`] when the
/// loss or a layer's weights grow past the config's divergence bounds (the state is then not
/// reported, so the last checkpoint stays the last good one).
pub fn train_from(
    cfg: &TrainConfig,
    data: &Split,
    state: &mut TrainState,
    on_event: &mut (dyn FnMut(Event) -> ControlFlow<()> + Send),
) -> Result<Outcome> {
    train_from_on(cfg, data, state, &Solo, on_event)
}

/// [`train_from`] as rank `comm.rank()` of a data-parallel run ([`crate::dist`]): every rank
/// calls it with the same config, data and state; each trains on its share of every global
/// batch and evaluates its share of the evaluation sets, and all end with the same `W` and `B`.
pub fn train_from_on(
    cfg: &TrainConfig,
    data: &Split,
    state: &mut TrainState,
    comm: &dyn Collective,
    on_event: &mut (dyn FnMut(Event) -> ControlFlow<()> + Send),
) -> Result<Outcome> {
    cfg.validate()?;
    // Every step needs a sample on every rank, the epoch's last (partial) batch included.
    let last = data.train.len() % cfg.batch_size;
    for (what, n) in [
        ("the global batch", cfg.batch_size),
        ("the epoch's last batch", last),
    ] {
        if n != 0 && n < comm.size() {
            return Err(Error::config(
                "batch_size",
                format!(
                    "{what} has {n} samples, fewer than the {} ranks (each needs one); choose another batch size",
                    comm.size()
                ),
            ));
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.resolved_threads())
        .build()
        .map_err(|e| Error::config("threads", e.to_string()))?;
    let data_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.data_threads)
        .build()
        .map_err(|e| Error::config("data_threads", e.to_string()))?;
    pool.install(|| {
        if cfg.sync_bn && comm.size() > 1 {
            crate::dist::with_synced_batch_norm(comm, || {
                run(cfg, data, state, comm, &data_pool, on_event)
            })
        } else {
            run(cfg, data, state, comm, &data_pool, on_event)
        }
    })
}

/// What a run's loop holds fixed: its config and data, where the batches are made, the rule
/// and the schedule, the probe batch, and the clock (when this process started training, and
/// the seconds trained before it).
struct Loop<'a> {
    cfg: &'a TrainConfig,
    data: &'a Split,
    comm: &'a dyn Collective,
    data_pool: &'a rayon::ThreadPool,
    rule: Box<dyn Rule<f32>>,
    schedule: Schedule,
    /// Steps an epoch.
    steps: usize,
    probe: (Tensor<f32>, Vec<u32>),
    start: Instant,
    before: f64,
}

fn run(
    cfg: &TrainConfig,
    data: &Split,
    st: &mut TrainState,
    comm: &dyn Collective,
    data_pool: &rayon::ThreadPool,
    on_event: &mut (dyn FnMut(Event) -> ControlFlow<()> + Send),
) -> Result<Outcome> {
    let rule = training_rule(cfg, &st.net);
    let mut opt = cfg.optimizer();
    let probe_idx: Vec<usize> = (0..cfg.probe_size.min(data.train.len())).collect();
    let lp = Loop {
        cfg,
        data,
        comm,
        data_pool,
        rule,
        schedule: Schedule {
            kind: cfg.schedule,
            base_lr: cfg.lr,
            milestones: cfg.milestones.clone(),
            gamma: cfg.gamma,
            warmup_epochs: cfg.warmup_epochs,
            epochs: cfg.epochs,
        },
        steps: data.train.len().div_ceil(cfg.batch_size),
        probe: data.train.batch(&probe_idx)?,
        // Every second from here on counts, the warm-up's too.
        start: Instant::now(),
        before: st.seconds,
    };
    if lp.begin(st, &mut opt, on_event)?.is_break() {
        return Ok(Outcome::Stopped);
    }
    while st.epoch < cfg.epochs {
        let clock = (Instant::now(), st.sums.seen);
        let Some((lr, data_wait_s)) = lp.epoch_steps(st, &mut opt, clock, on_event)? else {
            return Ok(Outcome::Stopped);
        };
        if lp
            .end_epoch(st, clock, lr, data_wait_s, on_event)?
            .is_break()
        {
            return Ok(Outcome::Stopped);
        }
    }
    Ok(Outcome::Finished(Box::new(st.summary(cfg.epochs))))
}

impl Loop<'_> {
    fn probe(&self) -> (&Tensor<f32>, &[u32]) {
        (&self.probe.0, &self.probe.1)
    }

    /// The run's seconds so far: those trained before this process, and this process's since
    /// [`Loop::start`].
    fn seconds(&self) -> f64 {
        self.before + self.start.elapsed().as_secs_f64()
    }

    /// What comes before the first data step, each once in a run's life — the rule's warm-up,
    /// noise pre-training — then [`Event::Started`] and, with `probe_every`, the probe at step 0.
    fn begin(
        &self,
        st: &mut TrainState,
        opt: &mut crate::optim::Optimizer,
        on_event: &mut (dyn FnMut(Event) -> ControlFlow<()> + Send),
    ) -> Result<ControlFlow<()>> {
        let rule = self.rule.as_ref();
        if !st.warmed_up {
            if !warm_up(rule, st, on_event) {
                return Ok(ControlFlow::Break(()));
            }
            st.warmed_up = true;
            // Exactly 0 for a rule without a warm-up.
            if rule.warmup_batches() > 0 {
                st.warmup_seconds = self.start.elapsed().as_secs_f64();
            }
        }
        if !st.pretrained {
            let (cfg, classes) = (self.cfg, self.data.train.classes);
            let phase = pretrain(
                cfg,
                st,
                rule,
                opt,
                self.comm,
                self.probe(),
                classes,
                on_event,
            )?;
            if phase.is_break() {
                return Ok(ControlFlow::Break(()));
            }
            st.pretrained = true;
        }
        st.seconds = self.seconds();
        if on_event(Event::Started {
            epochs: self.cfg.epochs,
            steps_per_epoch: self.steps,
            state: st,
        })
        .is_break()
        {
            return Ok(ControlFlow::Break(()));
        }
        if self.cfg.probe_every > 0 && st.epoch == 0 && st.step == 0 {
            let record = probe_record(st, rule, self.probe(), self.steps, None);
            if on_event(Event::Probe { record: &record }).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The current epoch's remaining steps, their batches made (gathered, decoded, augmented)
    /// on a background thread ahead of use; `clock` is when the epoch's training began here and
    /// the images seen by then. Returns the rate of the epoch's last step and the seconds
    /// training waited for batches, or `None` where an event stopped the run.
    fn epoch_steps(
        &self,
        st: &mut TrainState,
        opt: &mut crate::optim::Optimizer,
        (t0, seen_before): (Instant, usize),
        on_event: &mut (dyn FnMut(Event) -> ControlFlow<()> + Send),
    ) -> Result<Option<(f64, f64)>> {
        let (cfg, data, comm, data_pool) = (self.cfg, self.data, self.comm, self.data_pool);
        let (epoch, steps, rule) = (st.epoch, self.steps, self.rule.as_ref());
        let order = epoch_order(cfg.seed, epoch, data.train.len());
        let mut lr = self.schedule.lr(epoch, steps.saturating_sub(1), steps);
        let batch_idx = |step: usize| {
            &order[step * cfg.batch_size..((step + 1) * cfg.batch_size).min(order.len())]
        };
        let waited = std::thread::scope(|scope| -> Result<Option<f64>> {
            let mut batches = Prefetch::spawn(scope, st.step..steps, |step| {
                // A generator per step, so a resumed run augments exactly as an unbroken one.
                let stream = STREAM_AUGMENT + ((((epoch as u64) << 24) | step as u64) << 8);
                let mut rng = crate::rng(cfg.seed, stream);
                let idx = batch_idx(step);
                let mine = share(idx.len(), comm.rank(), comm.size());
                data_pool.install(|| {
                    data.train
                        .train_batch_share(idx, mine, cfg.augment, &mut rng)
                })
            });
            while st.step < steps {
                let step = st.step;
                lr = self.schedule.lr(epoch, step, steps);
                let (x, y) = batches
                    .recv()
                    .ok_or_else(|| Error::config("data_threads", "the data thread stopped"))??;
                opt.set_step((epoch * steps + step) as u64 + 1);
                let global = batch_idx(step).len();
                let sums = train_step_on(
                    comm,
                    global,
                    &mut st.net,
                    rule,
                    opt,
                    &x,
                    &y,
                    lr,
                    &mut st.rng_mirror,
                )
                .map_err(|origin| Error::NonFinite {
                    epoch: epoch + 1,
                    step: step + 1,
                    origin,
                })?;
                let loss = sums.loss;
                if let Some(what) = diverged(
                    cfg,
                    st,
                    loss,
                    data.train.classes,
                    step % 16 == 15 || step + 1 == steps,
                ) {
                    return Err(Error::Diverged {
                        epoch: epoch + 1,
                        step: step + 1,
                        what,
                    });
                }
                st.sums.loss += loss * global as f64;
                st.sums.top1 += sums.top1;
                st.sums.top5 += sums.top5;
                st.sums.seen += global;
                st.step += 1;
                let images_per_s = (st.sums.seen - seen_before) as f64 / t0.elapsed().as_secs_f64();
                st.seconds = self.seconds();
                // Before the step's event, which may checkpoint: a run resumed from this step
                // has its record.
                if cfg.probe_every > 0 && (epoch * steps + st.step).is_multiple_of(cfg.probe_every)
                {
                    let record = probe_record(st, rule, self.probe(), steps, Some(lr));
                    if on_event(Event::Probe { record: &record }).is_break() {
                        return Ok(None);
                    }
                }
                if on_event(Event::Step {
                    epoch: epoch + 1,
                    step: step + 1,
                    loss,
                    images_per_s,
                    state: st,
                })
                .is_break()
                {
                    return Ok(None);
                }
            }
            Ok(Some(batches.waited.as_secs_f64()))
        })?;
        Ok(waited.map(|w| (lr, w)))
    }

    /// The end of an epoch: the training sums, the test (and validation) evaluation, the
    /// layers' angles on the probe batch, recorded as [`Event::Epoch`] (which may checkpoint).
    fn end_epoch(
        &self,
        st: &mut TrainState,
        (t0, seen_before): (Instant, usize),
        lr: f64,
        data_wait_s: f64,
        on_event: &mut (dyn FnMut(Event) -> ControlFlow<()> + Send),
    ) -> Result<ControlFlow<()>> {
        let (data, comm) = (self.data, self.comm);
        let train_seconds = t0.elapsed().as_secs_f64();
        let n = st.sums.seen.max(1) as f64;
        let train_eval = Evaluation {
            loss: st.sums.loss / n,
            top1_err: 1.0 - st.sums.top1 as f64 / n,
            top5_err: (data.train.classes >= 10).then(|| 1.0 - st.sums.top5 as f64 / n),
        };
        let epoch = st.epoch;
        let _ = on_event(Event::Evaluating { epoch: epoch + 1 });
        let test = evaluate_on(comm, &mut st.net, &data.test)?;
        let val = match &data.val {
            Some(v) => Some(evaluate_on(comm, &mut st.net, v)?),
            None => None,
        };
        let (probe_x, probe_y) = self.probe();
        let layers = layer_records(&mut st.net, self.rule.as_ref(), probe_x, probe_y);
        let record = EpochRecord {
            epoch: epoch + 1,
            lr,
            train: train_eval,
            val,
            test,
            layers,
            seconds: t0.elapsed().as_secs_f64(),
            images_per_s: (st.sums.seen - seen_before) as f64 / train_seconds,
            data_wait_s,
        };
        st.end_epoch(record);
        st.seconds = self.seconds();
        let record = st.last.as_ref().expect("just set");
        Ok(on_event(Event::Epoch { record, state: st }))
    }
}
