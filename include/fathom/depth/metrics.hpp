#pragma once
// Depth metrics of "How Do LLMs Use Their Depth?" (Gupta et al., 2025; docs/lenses.md), computed from per-layer
// readouts (depth/lens_policy.hpp: read_all_layers). Readout index i = 0..L is hidden_states[i]
// (i = 0: embeddings, i = L: the model's own output).
//
//   rank_i(y)         1 + #{v : p_i(v) > p_i(y)}
//   first crossing    the first i with rank_i(y) <= k (not "stays <= k"); -1 if none
//   earliest curve    mean first crossing over tokens/prompts that cross, for each k
//   frequency bucket  the corpus-frequency rank of a token (1 = most frequent, counted with the
//                     model's tokenizer): 1–10, 11–100, 101–1000, 1000+ (ranks > 1000; tokens
//                     never seen in the corpus fall here too)
//   bucket shares     per layer, the share of top-1 predictions in each bucket
//   decision flip     per layer and bucket: among tokens whose layer-i top-1 is in the bucket,
//                     the share whose layer-i top-1 differs from the final top-1
//   option ranks      per layer, each multiple-choice option's rank in the vocabulary and among
//                     the options (options given as strings; their first token is scored)
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/core/text_file.hpp"
#include "fathom/io/json.hpp"
#include "fathom/depth/lens_policy.hpp"
#include "fathom/lens/batch_readout.hpp"
#include "fathom/lens/readout.hpp"

namespace fathom::depth {

inline constexpr size_t kBuckets = 4;
inline constexpr const char* kBucketNames[kBuckets] = {"1-10", "11-100", "101-1000", "1000+"};

inline size_t bucket_of_rank(int64_t freq_rank) {
  return freq_rank <= 10 ? 0 : freq_rank <= 100 ? 1 : freq_rank <= 1000 ? 2 : 3;
}

// The first index i with ranks[i] <= k, -1 if none.
inline int first_crossing(std::span<const int64_t> ranks, int64_t k) {
  for (size_t i = 0; i < ranks.size(); ++i)
    if (ranks[i] <= k) return int(i);
  return -1;
}

// k = 1..10, 20..100 by 10, 200..1000 by 100, 2000..max by 1000 (37 points up to 10⁴).
inline std::vector<int64_t> default_ks(int64_t max_k = 10000) {
  std::vector<int64_t> ks;
  for (int64_t step = 1; step <= max_k; step *= 10)
    for (int64_t k = (step == 1 ? 1 : 2 * step); k <= 10 * step && k <= max_k; k += step)
      ks.push_back(k);
  return ks;
}

struct EarliestCurve {
  std::vector<int64_t> k;
  std::vector<double> mean_layer;  // mean first crossing over items that cross (NaN if none)
  std::vector<size_t> crossed;     // items that reach rank <= k at some layer
  size_t items = 0;
};

// ranks: one per-layer rank trajectory per item (token or prompt).
inline EarliestCurve earliest_layer_curve(const std::vector<std::vector<int64_t>>& ranks,
                                          std::span<const int64_t> ks) {
  EarliestCurve c;
  c.items = ranks.size();
  for (int64_t k : ks) {
    double s = 0;
    size_t n = 0;
    for (auto& r : ranks)
      if (int i = first_crossing(r, k); i >= 0) s += i, ++n;
    c.k.push_back(k);
    c.mean_layer.push_back(n ? s / double(n) : NAN);
    c.crossed.push_back(n);
  }
  return c;
}

// Corpus token frequencies, counted with the model's tokenizer.
class TokenFrequency {
 public:
  void add(std::span<const int32_t> ids) {
    for (int32_t t : ids) ++counts_[t];
    ranked_ = false;
  }
  // Counts the tokens of a text file (encode(text, false) of any fathom tokenizer), line by line
  // so a large corpus never becomes one huge string.
  template <class Tokenizer>
  void add_text_file(const Tokenizer& tok, const std::filesystem::path& path) {
    const std::string text = read_text_file(path);
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      if (end > start) {
        auto ids = tok.encode(text.substr(start, end - start), false);
        add(std::span<const int32_t>(ids.data(), ids.size()));
      }
      start = end + 1;
    }
  }

  // Saved counts, so a large corpus is tokenized once and reused. A small text file:
  //   fathom-token-counts 1
  //   vocab <V>                  the tokenizer's vocabulary size (checked on load)
  //   source <free text>         what was counted (informational)
  //   <id> <count>               one line per seen token, ascending id
  void save(const std::filesystem::path& path, size_t vocab, const std::string& source) const {
    std::vector<std::pair<int32_t, int64_t>> v(counts_.begin(), counts_.end());
    std::sort(v.begin(), v.end());
    std::ofstream o(path);
    if (!o) throw IoError(path.string(), "", "cannot open for writing");
    std::string src = source;
    std::replace(src.begin(), src.end(), '\n', ' ');
    o << "fathom-token-counts 1\nvocab " << vocab << "\nsource " << src << "\n";
    for (auto& [id, c] : v) o << id << " " << c << "\n";
    if (!o) throw IoError(path.string(), "", "write failed");
  }
  // Loads counts written by save(); `vocab` must be the vocabulary they were counted with.
  static TokenFrequency load(const std::filesystem::path& path, size_t vocab) {
    const std::string f = path.string();
    std::ifstream in(path);
    if (!in) throw IoError(f, "", "token counts not found or unreadable");
    std::string line;
    auto next = [&](const char* field) {
      if (!std::getline(in, line)) throw FormatError(f, field, "missing (file ends early)");
      return line;
    };
    if (next("header") != "fathom-token-counts 1")
      throw FormatError(f, "header", "expected 'fathom-token-counts 1' (not a counts file)");
    const std::string vl = next("vocab");
    if (vl.rfind("vocab ", 0) != 0) throw FormatError(f, "vocab", "expected 'vocab <size>'");
    if (vl.substr(6) != std::to_string(vocab))
      throw UsageError(f, "vocab", "counted with a vocabulary of " + vl.substr(6) +
                                       " tokens, the model has " + std::to_string(vocab));
    if (next("source").rfind("source", 0) != 0) throw FormatError(f, "source", "expected 'source ...'");
    TokenFrequency t;
    size_t line_no = 3;
    while (std::getline(in, line)) {
      ++line_no;
      if (line.empty()) continue;
      long long id = -1, c = -1;
      char extra = 0;
      if (std::sscanf(line.c_str(), "%lld %lld %c", &id, &c, &extra) != 2 || id < 0 ||
          size_t(id) >= vocab || c <= 0)
        throw FormatError(f, "line " + std::to_string(line_no),
                          "expected '<id> <count>' with id < " + std::to_string(vocab) +
                              " and a positive count");
      if (!t.counts_.emplace(int32_t(id), int64_t(c)).second)
        throw FormatError(f, "line " + std::to_string(line_no), "token id listed twice");
    }
    return t;
  }

  int64_t count(int32_t id) const {
    auto it = counts_.find(id);
    return it == counts_.end() ? 0 : it->second;
  }
  size_t distinct() const { return counts_.size(); }
  // 1-based rank by descending count (ties: lower id first); unseen tokens: distinct() + 1.
  int64_t rank(int32_t id) const {
    rank_all();
    auto it = rank_.find(id);
    return it == rank_.end() ? int64_t(counts_.size()) + 1 : it->second;
  }
  size_t bucket(int32_t id) const { return bucket_of_rank(rank(id)); }

 private:
  void rank_all() const {
    if (ranked_) return;
    std::vector<std::pair<int64_t, int32_t>> v;  // (-count, id)
    for (auto& [id, c] : counts_) v.emplace_back(-c, id);
    std::sort(v.begin(), v.end());
    rank_.clear();
    for (size_t i = 0; i < v.size(); ++i) rank_[v[i].second] = int64_t(i) + 1;
    ranked_ = true;
  }
  std::unordered_map<int32_t, int64_t> counts_;
  mutable std::unordered_map<int32_t, int64_t> rank_;
  mutable bool ranked_ = false;
};

// Per-layer top-1 bucket shares and decision flips, accumulated token by token.
class BucketStats {
 public:
  BucketStats(size_t readouts, const TokenFrequency& freq)
      : n_(readouts), freq_(&freq), in_(readouts), flip_(readouts) {}

  // top1[i]: the top-1 token of readout i = 0..n-1 for one token; top1.back() is the final one.
  void add(std::span<const int32_t> top1) {
    if (top1.size() != n_) throw UsageError("", "top1", "expected one id per readout");
    const int32_t fin = top1.back();
    for (size_t i = 0; i < n_; ++i) {
      const size_t b = freq_->bucket(top1[i]);
      ++in_[i][b];
      flip_[i][b] += top1[i] != fin;
    }
    ++tokens_;
  }

  size_t readouts() const { return n_; }
  size_t tokens() const { return tokens_; }
  // Share of readout i's top-1 predictions in bucket b.
  double share(size_t i, size_t b) const {
    return tokens_ ? double(in_[i][b]) / double(tokens_) : NAN;
  }
  // Among tokens whose readout-i top-1 is in bucket b: share that differs from the final top-1.
  double flip_ratio(size_t i, size_t b) const {
    return in_[i][b] ? double(flip_[i][b]) / double(in_[i][b]) : NAN;
  }
  // Over all buckets: share of tokens whose readout-i top-1 differs from the final one.
  double flip_ratio(size_t i) const {
    uint64_t f = 0;
    for (size_t b = 0; b < kBuckets; ++b) f += flip_[i][b];
    return tokens_ ? double(f) / double(tokens_) : NAN;
  }

 private:
  size_t n_;
  const TokenFrequency* freq_;
  std::vector<std::array<uint64_t, kBuckets>> in_, flip_;  // [readouts][bucket]
  size_t tokens_ = 0;
};

// What the readouts of one token say: top-1 and the rank of the target at every readout.
struct TokenProfile {
  int32_t token = 0;               // the input token
  int32_t target = -1;             // whose rank is tracked
  std::vector<int32_t> top1;       // [L+1]
  std::vector<int64_t> rank;       // [L+1] rank of `target`
};

enum class Target : uint8_t {
  FinalTop1,  // the model's own prediction (the final readout's top-1)
  NextToken,  // the next input token (the last position has none and is left out)
};

// Runs `tokens` (appended to the session) and profiles every position through the lens: per
// readout, a block of up to reader.max_rows() tokens is read out with one matrix product reduced
// to top-1 and target rank inside the product (lens::BatchReader::ranks): no [rows, vocab] block
// of logits is written with Exact products, one at a time with Gemm products. The final readout
// comes first (it may be the target). Equal to profile_tokens_per_token up to the summation order
// of the products, and for a quantised unembedding with Exact products up to the per-token path's
// int8 activations too (lens/batch_readout.hpp). One `reader` can serve many calls: it keeps the
// unembedding packed for its products.
template <class Lens>
std::vector<TokenProfile> profile_tokens(Session& s, std::span<const int32_t> tokens,
                                         const Lens& lens, Target target, lens::BatchReader& reader) {
  const size_t L = s.model().n_layers(), V = s.model().vocab();
  if (reader.vocab() != V || reader.hidden() != s.model().hidden())
    throw UsageError("", "reader", "a BatchReader of another model");
  std::vector<TokenProfile> out(tokens.size());
  if (tokens.empty()) return out;
  for (size_t t = 0; t < tokens.size(); ++t) {
    out[t].token = tokens[t];
    out[t].top1.resize(L + 1);
    if (target == Target::NextToken && t + 1 < tokens.size()) {
      if (tokens[t + 1] < 0 || size_t(tokens[t + 1]) >= V)  // checked here: rows run in threads
        throw UsageError("", "tokens", "token id " + std::to_string(tokens[t + 1]) +
                                           " outside the vocabulary");
      out[t].target = tokens[t + 1];
    }
  }
  const lens::SiteRecorder rec = lens::record_hidden_states(s, tokens);
  std::vector<int32_t> targets;  // [n] the block's targets
  lens::translated_blocks(rec, lens, reader.max_rows(), 0, uint32_t(tokens.size()),
                          [&](size_t i, uint32_t s0, const float* x, size_t n) {
    // The final readout's own top-1 is its target: no count needed, its rank is 1.
    const bool own_top1 = i == L && target == Target::FinalTop1;
    targets.resize(own_top1 ? 0 : n);
    for (size_t j = 0; j < targets.size(); ++j) targets[j] = out[s0 + j].target;
    const auto& r = reader.ranks(x, n, targets, own_top1 ? 0 : 1);
    for (size_t j = 0; j < n; ++j) {
      auto& p = out[s0 + j];
      p.top1[i] = r.top1[j];
      if (own_top1) p.target = p.top1[L];
      if (p.target < 0) continue;
      if (i == L) p.rank.resize(L + 1);
      p.rank[i] = own_top1 ? 1 : r.rank[j];
    }
  });
  if (target == Target::NextToken) out.pop_back();
  return out;
}
// The same with a reader of its own: blocks of `block_rows`, `products` as lens::BatchReader's
// (Exact, or Gemm: the model's own kernels).
template <class Lens>
std::vector<TokenProfile> profile_tokens(Session& s, std::span<const int32_t> tokens,
                                         const Lens& lens, Target target = Target::FinalTop1,
                                         size_t block_rows = lens::BatchReader::kDefaultRows,
                                         kernels::Rows products = kernels::Rows::Exact) {
  lens::BatchReader reader(s.model(), block_rows, products);
  return profile_tokens(s, tokens, lens, target, reader);
}

// The same profiles one [vocab] readout at a time (a matrix-vector product per token and
// readout): the reference the batched profile_tokens is tested and timed against.
template <class Lens>
std::vector<TokenProfile> profile_tokens_per_token(Session& s, std::span<const int32_t> tokens,
                                                   const Lens& lens,
                                                   Target target = Target::FinalTop1) {
  const size_t L = s.model().n_layers();
  const lens::SiteRecorder rec = lens::record_hidden_states(s, tokens);
  lens::Reader reader(s.model());
  std::vector<float> scratch;
  std::vector<TokenProfile> out(tokens.size());
  for (uint32_t t = 0; t < tokens.size(); ++t) {
    auto& p = out[t];
    p.token = tokens[t];
    p.top1.resize(L + 1);
    auto fin = lens::lens_logits(reader, lens, rec, t, L, scratch);
    p.top1[L] = lens::top_k(fin, 1).front().id;
    p.target = target == Target::FinalTop1 ? p.top1[L] : t + 1 < tokens.size() ? tokens[t + 1] : -1;
    if (p.target < 0) continue;
    p.rank.resize(L + 1);
    p.rank[L] = lens::rank_of(fin, p.target);
    for (size_t i = 0; i < L; ++i) {
      auto lg = lens::lens_logits(reader, lens, rec, t, i, scratch);
      p.top1[i] = lens::top_k(lg, 1).front().id;
      p.rank[i] = lens::rank_of(lg, p.target);
    }
  }
  if (target == Target::NextToken && !out.empty()) out.pop_back();
  return out;
}

// Per-layer ranks of multiple-choice options after a prompt.
struct OptionRanks {
  std::vector<int32_t> option_tokens;          // first token of each option
  std::vector<std::vector<int64_t>> vocab;     // [L+1][options] rank in the vocabulary
  std::vector<std::vector<int>> among;         // [L+1][options] 1 = most likely option
};

// Ranks of the given option tokens after `prompt` at every readout (prompt appended to `s`);
// `products` as lens::BatchReader's.
template <class Lens>
OptionRanks option_ranks(Session& s, std::span<const int32_t> prompt,
                         std::span<const int32_t> option_tokens, const Lens& lens,
                         kernels::Rows products = kernels::Rows::Exact) {
  if (option_tokens.empty()) throw UsageError("", "options", "no options given");
  const size_t L = s.model().n_layers();
  OptionRanks r;
  r.option_tokens.assign(option_tokens.begin(), option_tokens.end());
  r.vocab.assign(L + 1, std::vector<int64_t>(option_tokens.size()));
  r.among.assign(L + 1, std::vector<int>(option_tokens.size()));
  for (int32_t o : option_tokens)
    if (o < 0 || size_t(o) >= s.model().vocab())
      throw UsageError("", "options", "token id " + std::to_string(o) + " outside the vocabulary");
  if (prompt.empty()) throw UsageError("", "prompt", "no tokens");
  // The L+1 readouts of the last token, translated, then one [L+1, vocab] product.
  const lens::SiteRecorder rec = lens::record_hidden_states(s, prompt);
  const size_t H = s.model().hidden();
  const uint32_t last = uint32_t(prompt.size() - 1);
  std::vector<float> states((L + 1) * H);  // [L+1, hidden] translated hidden_states[i]
  for (size_t i = 0; i <= L; ++i) {
    auto h = rec.get(i, last);
    if (lens.identity(i)) std::copy(h.begin(), h.end(), states.begin() + long(i * H));
    else lens.translate(i, h.data(), states.data() + i * H, 1, H);
  }
  lens::BatchReader reader(s.model(), L + 1, products);
  reader.logits(states.data(), L + 1);
  for (size_t i = 0; i <= L; ++i) {
    const auto lg = reader.row(i);
    for (size_t o = 0; o < option_tokens.size(); ++o) {
      r.vocab[i][o] = lens::rank_of(lg, option_tokens[o]);
      int among = 1;
      for (size_t q = 0; q < option_tokens.size(); ++q)
        among += lg[size_t(option_tokens[q])] > lg[size_t(option_tokens[o])];
      r.among[i][o] = among;
    }
  }
  return r;
}

// First token of each option string (encode(option, false)); an option that encodes to nothing
// is an error naming it.
template <class Tokenizer>
std::vector<int32_t> option_first_tokens(const Tokenizer& tok, const std::vector<std::string>& options) {
  std::vector<int32_t> ids;
  for (auto& o : options) {
    auto e = tok.encode(o, false);
    if (e.empty()) throw UsageError("", "option '" + o + "'", "encodes to no tokens");
    ids.push_back(int32_t(e.front()));
  }
  return ids;
}

// The token each option starts with when it follows the prompt: encode(prompt + option) and take
// the first token after encode(prompt). This respects tokenizers whose pieces depend on context
// (a leading space merged into the word). An option that changes the prompt's own last tokens
// cannot be scored at the prompt's last position: that is an error naming it.
template <class Tokenizer>
std::vector<int32_t> option_tokens_after(const Tokenizer& tok, const std::string& prompt,
                                         const std::vector<std::string>& options,
                                         bool add_special = true) {
  const auto p = tok.encode(prompt, add_special);
  std::vector<int32_t> ids;
  for (auto& o : options) {
    const auto e = tok.encode(prompt + o, add_special);
    if (e.size() <= p.size() || !std::equal(p.begin(), p.end(), e.begin()))
      throw UsageError("", "option '" + o + "'",
                       "does not start a new token after the prompt (it merges with the prompt's "
                       "last token or encodes to nothing)");
    ids.push_back(int32_t(e[p.size()]));
  }
  return ids;
}

}  // namespace fathom::depth
