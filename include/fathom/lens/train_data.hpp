#pragma once
// Training data for lens training, as the tuned-lens recipe prepares it: documents tokenized
// one by one, each followed by the end-of-sequence token, joined into one stream, cut into
// sequences of a fixed length (the incomplete tail is dropped), the held-out part split off
// from the END of the stream (text the training part never saw), the training sequences
// shuffled with a fixed seed. The trainer then takes sequences k·S .. k·S+S−1 (mod n) at step k,
// so the whole schedule is a function of (text, tokenizer, seq_len, seed): a resumed or a
// reference run sees the same tokens in the same order.
//
// A document is a non-empty line of the text file (a paragraph of WikiText, a story of
// TinyStories). The file is read and tokenized line by line; only token ids are kept
// (4 bytes per token), never the hidden states of more than one micro-batch.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/core/splitmix.hpp"

namespace fathom::lens {

struct DataOptions {
  size_t seq_len = 128;        // tokens per sequence (BOS included when bos >= 0)
  int32_t eos = -1;            // appended after every document (none if < 0)
  int32_t bos = -1;            // first token of every sequence (none if < 0): models trained
                               // with a BOS at position 0 see one, as the previous trainer did
  double eval_fraction = 0.1;  // share of sequences held out (taken from the end)
  uint64_t seed = 42;          // shuffle of the training sequences
};

// Sequences of one length, row-major.
struct SequenceSet {
  size_t seq_len = 0;
  std::vector<int32_t> ids;  // [n, seq_len]
  size_t size() const { return seq_len ? ids.size() / seq_len : 0; }
  std::span<const int32_t> operator[](size_t i) const { return {ids.data() + i * seq_len, seq_len}; }
  std::vector<std::span<const int32_t>> spans() const {
    std::vector<std::span<const int32_t>> s;
    for (size_t i = 0; i < size(); ++i) s.push_back((*this)[i]);
    return s;
  }
};

struct TrainData {
  SequenceSet train, eval;
  size_t documents = 0, stream_tokens = 0;
};

// A token stream cut into model inputs, for training and analysis alike (lens training packs
// them, examples/depth reads them out): window k is BOS (when bos >= 0) and then stream tokens
// [k·body, (k+1)·body), body = seq_len − 1 with a BOS, seq_len without. The stream must outlive
// the windows.
struct TokenWindows {
  std::span<const int32_t> stream;
  size_t seq_len;
  int32_t bos = -1;

  size_t body() const {
    const size_t b = seq_len - (bos >= 0 && seq_len > 0 ? 1 : 0);
    if (b == 0) throw UsageError("", "seq_len", "a window needs room for at least one stream token");
    return b;
  }
  // Whole windows only, or with a shorter last one for the tail when `keep_tail`.
  size_t count(bool keep_tail) const {
    return keep_tail ? (stream.size() + body() - 1) / body() : stream.size() / body();
  }
  // Stream tokens covered by windows 0..k.
  size_t end(size_t k) const { return std::min(stream.size(), (k + 1) * body()); }
  void append(std::vector<int32_t>& out, size_t k) const {
    if (bos >= 0) out.push_back(bos);
    out.insert(out.end(), stream.begin() + long(k * body()), stream.begin() + long(end(k)));
  }
  std::vector<int32_t> operator[](size_t k) const {
    std::vector<int32_t> w;  // [seq_len], shorter for the tail
    append(w, k);
    return w;
  }
};

// Fisher-Yates shuffle of the sequences with a fixed seed (splitmix64: std::shuffle's use of
// distributions differs between standard libraries; the order must not).
inline void shuffle_sequences(SequenceSet& set, uint64_t seed) {
  SplitMix64 rng{seed};
  const size_t n = set.size(), S = set.seq_len;
  for (size_t i = n; i > 1; --i) {
    const size_t j = size_t(rng.next() % i);
    if (j != i - 1)
      std::swap_ranges(set.ids.begin() + long((i - 1) * S), set.ids.begin() + long(i * S),
                       set.ids.begin() + long(j * S));
  }
}

// Packs a token stream into sequences (see the file comment); `origin` names the source in errors.
inline TrainData pack_stream(const std::vector<int32_t>& stream, size_t documents,
                             const DataOptions& o, const std::string& origin) {
  if (o.seq_len < 2) throw UsageError(origin, "seq_len", "must be at least 2");
  if (!(o.eval_fraction > 0 && o.eval_fraction < 1))
    throw UsageError(origin, "eval_fraction", "must be in (0, 1)");
  const TokenWindows windows{stream, o.seq_len, o.bos};
  const size_t n = windows.count(/*keep_tail=*/false);
  const size_t n_eval = size_t(double(n) * o.eval_fraction + 0.5);
  if (n < 2 || n_eval == 0 || n_eval >= n)
    throw DataError(origin, "", "text too short: " + std::to_string(n) + " sequences of " +
                                    std::to_string(o.seq_len) +
                                    " tokens (need a training and a held-out part)");
  TrainData d;
  d.documents = documents;
  d.stream_tokens = stream.size();
  d.train.seq_len = d.eval.seq_len = o.seq_len;
  for (size_t k = 0; k < n; ++k) windows.append(k < n - n_eval ? d.train.ids : d.eval.ids, k);
  shuffle_sequences(d.train, o.seed);
  return d;
}

// Tokenizes a text file document by document (non-empty lines) with encode(line, false) of any
// fathom tokenizer, each document followed by o.eos, and packs the stream.
template <class Tokenizer>
TrainData load_train_data(const Tokenizer& tok, const std::filesystem::path& path,
                          const DataOptions& o) {
  std::ifstream in(path);
  if (!in) throw IoError(path.string(), "", "training text not found or unreadable");
  std::vector<int32_t> stream;
  size_t docs = 0;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const auto ids = tok.encode(line, false);
    stream.insert(stream.end(), ids.begin(), ids.end());
    if (o.eos >= 0) stream.push_back(o.eos);
    ++docs;
  }
  if (in.bad()) throw IoError(path.string(), "", "read failed");
  return pack_stream(stream, docs, o, path.string());
}

}  // namespace fathom::lens
