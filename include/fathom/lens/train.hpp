#pragma once
// Tuned-lens training (docs/lenses.md), the recipe of the reference package (tuned-lens 0.2):
//   loss_i   = mean over tokens of KL(p_final ‖ p_lens,i),  p_lens,i = softmax(W_U · norm(h + A_i h + b_i)),
//              h = hidden_states[i] (translator i reads the input of block i)
//   gradient = Σ_i ∇loss_i, clipped to global norm 1.0 over all translators
//   SGD with Nesterov momentum 0.9, lr = lr_scale · (1 − 0.9) with lr_scale 1.0, weight decay 1e-3
//   (added to the gradient, as torch.optim.SGD does), linear decay of lr to 0 over `steps`.
// Data: token sequences; step k uses sequences k·S .. k·S+S−1 (mod the number of sequences), so
// a resumed run sees exactly what an uninterrupted one would.
//
// Backward pass for one token (z = h + A h + b, r = 1/sqrt(mean(z²) + eps), n = g ⊙ z · r):
//   dlogits = (q − p) / tokens,  dn = W_Uᵀ dlogits,
//   dz = r · (g ⊙ dn) − r³ · z · Σ_j(g_j dn_j z_j) / H,   dA += dz hᵀ,   db += dz.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/io/json.hpp"
#include "fathom/io/safetensors.hpp"
#include "fathom/kernels/linear.hpp"
#include "fathom/lens/readout.hpp"
#include "fathom/lens/site.hpp"
#include "fathom/lens/tuned_lens.hpp"
#include "fathom/model/session.hpp"

namespace fathom::lens {

struct TrainOptions {
  int steps = 250;            // optimizer steps (the linear decay reaches 0 at `steps`)
  size_t seqs_per_step = 8;   // sequences per step
  double lr_scale = 1.0;      // lr = lr_scale · (1 − momentum)
  double momentum = 0.9;
  double weight_decay = 1e-3;
  double clip = 1.0;          // global gradient-norm clip
};

// Hidden states and final log-probabilities of one sequence.
struct SequenceStates {
  size_t tokens = 0;
  std::vector<float> hidden;    // [L, tokens, H]: hidden_states[i], i < L
  std::vector<float> log_p;     // [tokens, V] log softmax of the model's logits
};

inline SequenceStates sequence_states(const Model& m, std::span<const int32_t> seq) {
  const size_t L = m.n_layers(), H = m.hidden(), V = m.vocab(), T = seq.size();
  std::vector<Site> sites;
  for (size_t i = 0; i < L; ++i) sites.push_back(hidden_state_site(i, L));
  SiteRecorder rec(sites, H);
  Session s(m, SessionOptions{int64_t(T), KvStrategy::Propagate});
  FullDepth full;
  auto lg = s.forward(seq, Phase::PP, full, rec, Logits::All);
  SequenceStates st;
  st.tokens = T;
  st.hidden.resize(L * T * H);
  for (size_t i = 0; i < L; ++i)
    for (uint32_t t = 0; t < T; ++t) {
      auto h = rec.get(i, t);
      std::copy(h.begin(), h.end(), st.hidden.begin() + long((i * T + t) * H));
    }
  st.log_p.assign(lg.begin(), lg.end());
  for (size_t t = 0; t < T; ++t) {
    float* r = st.log_p.data() + t * V;
    const double lse = logsumexp(std::span<const float>(r, V));
    for (size_t v = 0; v < V; ++v) r[v] = float(double(r[v]) - lse);
  }
  return st;
}

// Loss and gradients of translator i of `lens` (the model's readout gives norm and W_U).
class LensObjective {
 public:
  explicit LensObjective(const Model& m) : m_(&m), H_(m.hidden()), V_(m.vocab()) {
    const auto& U = m.readout().unembed;
    if (U.dtype == DType::F32) {
      u_ = static_cast<const float*>(U.data);
    } else {  // the backward pass needs W_Uᵀ products: one f32 copy
      uf_.resize(V_ * H_);
      for (size_t v = 0; v < V_; ++v)
        for (size_t c = 0; c < H_; ++c) uf_[v * H_ + c] = U.at(v, c);
      u_ = uf_.data();
    }
  }

  // Mean-over-`scale_tokens` KL(p ‖ lens) of h [n, H] against log_p [n, V]; when gw/gb are given,
  // adds the gradient of (Σ_t KL_t) / scale_tokens to gw [H, H] and gb [H]. Returns Σ_t KL_t.
  double run(const TunedLens& lens, size_t i, const float* h, const float* log_p, size_t n,
             double scale_tokens, float* gw, float* gb) {
    const size_t H = H_, V = V_;
    const auto& norm = *m_->readout().norm;
    z_.resize(n * H), nrm_.resize(n * H), lg_.resize(n * V);
    lens.translate(i, h, z_.data(), n, H);                       // z = h + A h + b   [n, H]
    norm(z_.data(), nrm_.data(), n);                             // n = norm(z)       [n, H]
    kernels::gemm(kernels::MatrixView{DType::F32, V, H, u_}, nrm_.data(), n, lg_.data());  // [n, V]
    double total = 0;
    dn_.assign(n * H, 0.f);
    for (size_t t = 0; t < n; ++t) {
      float* lg = lg_.data() + t * V;
      const float* lp = log_p + t * V;
      const double lse = logsumexp(std::span<const float>(lg, V));
      double kl = 0;
      for (size_t v = 0; v < V; ++v) {
        const double logq = double(lg[v]) - lse, p = std::exp(double(lp[v]));
        kl += p * (double(lp[v]) - logq);
        lg[v] = float((std::exp(logq) - p) / scale_tokens);    // dlogits
      }
      total += kl;
      if (!gw) continue;
      float* dn = dn_.data() + t * H;                           // dn = W_Uᵀ dlogits
      for (size_t v = 0; v < V; ++v) {
        const float d = lg[v];
        const float* u = u_ + v * H;
        for (size_t c = 0; c < H; ++c) dn[c] += d * u[c];
      }
      const float* z = z_.data() + t * H;
      double ms = 0, gdz = 0;
      for (size_t c = 0; c < H; ++c)
        ms += double(z[c]) * z[c], gdz += double(norm.weight[c]) * dn[c] * z[c];
      const double r = 1.0 / std::sqrt(ms / double(H) + double(norm.eps));
      const double k = r * r * r * gdz / double(H);
      const float* x = h + t * H;
      for (size_t row = 0; row < H; ++row) {
        const float dz = float(r * norm.weight[row] * dn[row] - k * z[row]);
        gb[row] += dz;
        float* g = gw + row * H;
        for (size_t c = 0; c < H; ++c) g[c] += dz * x[c];
      }
    }
    return total;
  }

 private:
  const Model* m_;
  size_t H_, V_;
  const float* u_ = nullptr;       // [V, H] f32 unembedding
  std::vector<float> uf_;          // [V, H] converted copy when stored in bf16/f16
  std::vector<float> z_, nrm_, dn_, lg_;
};

// SGD-Nesterov trainer with the reference hyperparameters; state saved beside the lens.
class LensTrainer {
 public:
  LensTrainer(const Model& m, TunedLens& lens, TrainOptions opts)
      : m_(&m), lens_(&lens), opts_(opts), obj_(m) {
    lens.check_fits(m);
    if (opts.steps <= 0) throw UsageError("", "steps", "must be positive");
    if (opts.seqs_per_step == 0) throw UsageError("", "seqs_per_step", "must be positive");
    mw_.assign(lens.weights().size(), 0.f);
    mb_.assign(lens.biases().size(), 0.f);
    gw_.assign(lens.weights().size(), 0.f);
    gb_.assign(lens.biases().size(), 0.f);
  }

  int step() const { return step_; }
  const TrainOptions& options() const { return opts_; }
  // lr of the current step (linear decay to 0 at `steps`).
  double lr() const {
    return opts_.lr_scale * (1 - opts_.momentum) *
           std::max(0.0, double(opts_.steps - step_) / double(opts_.steps));
  }

  // Gradients of Σ_i loss_i over `seqs` (mean over their tokens) into grad_w()/grad_b();
  // returns the per-layer mean KL.
  std::vector<double> gradients(const std::vector<std::span<const int32_t>>& seqs) {
    const size_t L = lens_->n_layers(), H = m_->hidden(), V = m_->vocab();
    std::fill(gw_.begin(), gw_.end(), 0.f);
    std::fill(gb_.begin(), gb_.end(), 0.f);
    size_t total = 0;
    for (auto& s : seqs) total += s.size();
    std::vector<double> loss(L, 0.0);
    for (auto& s : seqs) {
      const auto st = sequence_states(*m_, s);
      const size_t T = st.tokens;
      for (size_t i = 0; i < L; ++i)
        for (size_t t0 = 0; t0 < T; t0 += kChunk) {
          const size_t n = std::min(kChunk, T - t0);
          loss[i] += obj_.run(*lens_, i, st.hidden.data() + (i * T + t0) * H,
                              st.log_p.data() + t0 * V, n, double(total),
                              gw_.data() + i * H * H, gb_.data() + i * H);
        }
    }
    for (auto& l : loss) l /= double(total);
    return loss;
  }
  std::vector<float>& grad_w() { return gw_; }  // [L, H, H]
  std::vector<float>& grad_b() { return gb_; }  // [L, H]

  // One optimizer step on `seqs`; returns the per-layer mean KL before the update.
  std::vector<double> train_step(const std::vector<std::span<const int32_t>>& seqs) {
    auto loss = gradients(seqs);
    // Global-norm clip over every translator (torch.nn.utils.clip_grad_norm_).
    double sq = 0;
    for (float g : gw_) sq += double(g) * g;
    for (float g : gb_) sq += double(g) * g;
    const double norm = std::sqrt(sq), coef = opts_.clip / (norm + 1e-6);
    const float c = coef < 1.0 ? float(coef) : 1.f;
    const float rate = float(lr()), mu = float(opts_.momentum), wd = float(opts_.weight_decay);
    auto update = [&](std::vector<float>& p, std::vector<float>& g, std::vector<float>& buf) {
      for (size_t k = 0; k < p.size(); ++k) {  // torch.optim.SGD(nesterov=True, dampening=0)
        const float d = g[k] * c + wd * p[k];
        buf[k] = mu * buf[k] + d;  // zero-initialised: the first step stores d, as torch does
        p[k] -= rate * (d + mu * buf[k]);
      }
    };
    update(lens_->weights(), gw_, mw_);
    update(lens_->biases(), gb_, mb_);
    ++step_;
    return loss;
  }

  // Per-layer mean KL over `seqs` (no update).
  std::vector<double> evaluate(const std::vector<std::span<const int32_t>>& seqs) {
    const size_t L = lens_->n_layers(), H = m_->hidden(), V = m_->vocab();
    std::vector<double> loss(L, 0.0);
    size_t total = 0;
    for (auto& s : seqs) {
      const auto st = sequence_states(*m_, s);
      const size_t T = st.tokens;
      total += T;
      for (size_t i = 0; i < L; ++i)
        for (size_t t0 = 0; t0 < T; t0 += kChunk) {
          const size_t n = std::min(kChunk, T - t0);
          loss[i] += obj_.run(*lens_, i, st.hidden.data() + (i * T + t0) * H,
                              st.log_p.data() + t0 * V, n, 1.0, nullptr, nullptr);
        }
    }
    for (auto& l : loss) l /= double(std::max<size_t>(total, 1));
    return loss;
  }

  // Checkpoint: the lens (config.json + params.safetensors, the import layout) plus
  // optimizer.safetensors (momentum buffers) and train_state.json (step, options).
  void save(const std::filesystem::path& dir, const std::string& base_model = {}) const {
    lens_->save(dir, base_model);
    const size_t L = lens_->n_layers(), H = lens_->hidden();
    std::vector<io::TensorView> ts;
    for (size_t i = 0; i < L; ++i) {
      const std::string k = std::to_string(i);
      ts.push_back({k + ".weight.momentum", DType::F32, {int64_t(H), int64_t(H)},
                    reinterpret_cast<const std::byte*>(mw_.data() + i * H * H),
                    H * H * sizeof(float), {}});
      ts.push_back({k + ".bias.momentum", DType::F32, {int64_t(H)},
                    reinterpret_cast<const std::byte*>(mb_.data() + i * H), H * sizeof(float), {}});
    }
    io::save_safetensors(dir / "optimizer.safetensors", ts);
    io::Json st = {{"step", step_},
                   {"steps", opts_.steps},
                   {"seqs_per_step", opts_.seqs_per_step},
                   {"lr_scale", opts_.lr_scale},
                   {"momentum", opts_.momentum},
                   {"weight_decay", opts_.weight_decay},
                   {"clip", opts_.clip}};
    std::ofstream o(dir / "train_state.json");
    if (!o) throw IoError((dir / "train_state.json").string(), "", "cannot open for writing");
    o << st.dump(2) << "\n";
  }

  // Restores lens, momentum and step from a checkpoint written by save(); the options must match
  // those the run started with (else the schedule would silently change).
  void resume(const std::filesystem::path& dir) {
    *lens_ = TunedLens::load(dir);
    lens_->check_fits(*m_, dir.string());
    const auto sp = dir / "train_state.json";
    const io::Json st = io::read_json_file(sp);
    auto num = [&](const char* k) {
      if (!st.contains(k) || !st[k].is_number())
        throw FormatError(sp.string(), k, "missing or not a number");
      return st[k].get<double>();
    };
    const int step = int(num("step"));
    if (step < 0 || step > opts_.steps) throw FormatError(sp.string(), "step", "outside [0, steps]");
    if (int(num("steps")) != opts_.steps || size_t(num("seqs_per_step")) != opts_.seqs_per_step)
      throw UsageError(sp.string(), "steps/seqs_per_step",
                       "differ from this run's options; resume with the same options");
    const auto store = io::load_safetensors(dir / "optimizer.safetensors");
    const size_t L = lens_->n_layers(), H = lens_->hidden();
    for (size_t i = 0; i < L; ++i) {
      const std::string k = std::to_string(i);
      auto w = io::to_f32(store.get(k + ".weight.momentum", {int64_t(H), int64_t(H)}));
      auto b = io::to_f32(store.get(k + ".bias.momentum", {int64_t(H)}));
      std::copy(w.begin(), w.end(), mw_.begin() + long(i * H * H));
      std::copy(b.begin(), b.end(), mb_.begin() + long(i * H));
    }
    step_ = step;
  }

 private:
  static constexpr size_t kChunk = 64;  // tokens per readout product (bounds [n, vocab] scratch)
  const Model* m_;
  TunedLens* lens_;
  TrainOptions opts_;
  LensObjective obj_;
  std::vector<float> mw_, mb_;  // momentum buffers [L, H, H], [L, H]
  std::vector<float> gw_, gb_;  // gradients
  int step_ = 0;
};

}  // namespace fathom::lens
