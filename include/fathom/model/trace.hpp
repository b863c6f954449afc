#pragma once
// What a policy did, per token and layer: phase, executed?, activated?, n_l, Δ_l, τ_l, and the
// per-layer usage summary of the Void paper ("% of layers used" = mean over layers of the
// fraction of tokens for which the layer was activated, per phase). A Session writes it
// (Session::set_trace): executed/exit/readout layers from the policy's decisions, activated and
// n_l, Δ_l, τ_l from the LayerNote the policy fills in after_layer.
//
// Usage counters are always kept (cheap, so a 14k-question eval can account layer usage);
// per-token records only when `keep_records` is set.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "fathom/model/depth_policy.hpp"

namespace fathom {

struct LayerRecord {
  bool executed = false;   // the layer was computed for this token
  bool activated = false;  // the layer's update was used (LAC: not a void)
  float norm = NAN;        // n_l = ||h_l||_2 (NaN when not computed)
  float delta = NAN;       // Δ_l = n_l − n_{l−1}
  float tau = NAN;         // τ_l, the threshold Δ_l was compared with
};

struct TokenRecord {
  int64_t sequence = 0;    // which prompt/sequence (set by the caller, Trace::set_sequence)
  int64_t position = 0;
  Phase phase = Phase::PP;
  int32_t token = 0;
  int exit_layer = -1;     // first layer not run because of an exit, -1: none
  int readout_layer = -1;  // layer whose output was read out (-1: embeddings)
  float embed_norm = NAN;  // n_{-1}
  std::vector<LayerRecord> layers;
};

struct Usage {
  std::vector<double> activated;  // [layers] fraction of tokens for which the layer was activated
  std::vector<double> executed;   // [layers] fraction of tokens for which it was computed
  size_t tokens = 0;
  double mean_activated() const { return mean(activated); }
  double mean_executed() const { return mean(executed); }

 private:
  static double mean(const std::vector<double>& v) {
    if (v.empty()) return 0;
    double s = 0;
    for (double x : v) s += x;
    return s / double(v.size());
  }
};

class Trace {
 public:
  explicit Trace(size_t n_layers = 0, bool keep_records = true)
      : n_layers_(n_layers), keep_(keep_records) {
    for (auto& c : counts_) c.assign(2 * n_layers, 0);
  }

  size_t n_layers() const { return n_layers_; }
  bool keeps_records() const { return keep_; }
  void set_sequence(int64_t id) { sequence_ = id; }
  int64_t sequence() const { return sequence_; }

  // The record of the token in `t.slot`, filled until end(). Its layer records are reused from
  // token to token, so a trace that keeps no records allocates nothing per token.
  TokenRecord& begin(const TokenInfo& t) {
    if (open_.size() <= t.slot) open_.resize(t.slot + 1);
    auto& r = open_[t.slot];
    r.sequence = sequence_, r.position = t.position, r.phase = t.phase, r.token = t.token;
    r.exit_layer = r.readout_layer = -1;
    r.embed_norm = NAN;
    r.layers.assign(n_layers_, LayerRecord{});
    return r;
  }
  TokenRecord& open(uint32_t slot) { return open_[slot]; }

  // Counts the token into the usage summary and keeps its record if asked to.
  void end(uint32_t slot) {
    auto& r = open_[slot];
    auto& c = counts_[size_t(r.phase)];
    for (size_t l = 0; l < n_layers_; ++l) {
      c[2 * l] += r.layers[l].activated;
      c[2 * l + 1] += r.layers[l].executed;
    }
    ++tokens_[size_t(r.phase)];
    if (keep_) records_.push_back(r);
  }

  Usage usage(Phase p) const {
    Usage u;
    u.tokens = tokens_[size_t(p)];
    u.activated.resize(n_layers_);
    u.executed.resize(n_layers_);
    const auto& c = counts_[size_t(p)];
    for (size_t l = 0; l < n_layers_; ++l) {
      u.activated[l] = u.tokens ? double(c[2 * l]) / double(u.tokens) : 0.0;
      u.executed[l] = u.tokens ? double(c[2 * l + 1]) / double(u.tokens) : 0.0;
    }
    return u;
  }

  // Σ over layers and the phase's tokens of activated (token, layer) pairs, exactly.
  uint64_t activated_pairs(Phase p) const {
    uint64_t n = 0;
    for (size_t l = 0; l < n_layers_; ++l) n += counts_[size_t(p)][2 * l];
    return n;
  }

  const std::vector<TokenRecord>& records() const { return records_; }
  void clear() {
    records_.clear();
    for (auto& c : counts_) std::fill(c.begin(), c.end(), 0);
    tokens_[0] = tokens_[1] = 0;
  }
  // Adds another trace's counts and records (e.g. from a parallel worker).
  void merge(const Trace& o) {
    for (int p = 0; p < 2; ++p) {
      for (size_t i = 0; i < counts_[p].size() && i < o.counts_[p].size(); ++i)
        counts_[p][i] += o.counts_[p][i];
      tokens_[p] += o.tokens_[p];
    }
    if (keep_) records_.insert(records_.end(), o.records_.begin(), o.records_.end());
  }

 private:
  size_t n_layers_ = 0;
  bool keep_ = true;
  int64_t sequence_ = 0;
  std::vector<TokenRecord> open_;        // [slots of the current forward pass]
  std::vector<TokenRecord> records_;
  std::vector<uint64_t> counts_[2];      // per phase: [layers] x {activated, executed}
  uint64_t tokens_[2] = {0, 0};
};

}  // namespace fathom
