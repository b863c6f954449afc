#pragma once
// The BPE model of tokenizer.json: vocabulary, merges by rank, byte fallback, unk, and
// ignore_merges. For byte-level vocabularies the model reads raw bytes (each byte starts as the
// id of its GPT-2 byte character), which is the reference's ByteLevel pre-tokenizer + BPE
// without materialising the mapped string.
//
// Merging applies the lowest-rank adjacent pair first, the leftmost on ties: the reference's
// priority queue keyed by (rank, position). Short words use a direct scan, long ones a heap.
#include <algorithm>
#include <array>
#include <cstring>
#include <cstdint>
#include <functional>
#include <limits>
#include <atomic>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fathom/tokenizer/detail/byte_level.hpp"
#include "fathom/tokenizer/detail/json_reader.hpp"
#include "fathom/tokenizer/detail/json_util.hpp"
#include "fathom/tokenizer/detail/utf8.hpp"

namespace fathom::tok::detail {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using StringMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

inline uint64_t fast_hash(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  uint64_t w = 0;
  std::memcpy(&w, s.data() + i, s.size() - i);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 29);
}

// Strings indexed by id plus an open-addressing string -> id table over them (one 64-bit slot
// per entry: 32 hash bits | id + 1). Several times faster to build and query than a node map.
class FlatVocab {
 public:
  // strings[id]; `present[id]` false for ids without a string (holes).
  void build(std::vector<std::string> strings, const std::vector<bool>& present) {
    strs_ = std::move(strings);
    size_t cap = 16;
    while (cap < strs_.size() * 2) cap <<= 1;
    slots_.assign(cap, 0);
    mask_ = cap - 1;
    for (size_t id = 0; id < strs_.size(); ++id) {
      if (!present[id]) continue;
      const uint64_t h = fast_hash(strs_[id]);
      size_t i = h & mask_;
      while (slots_[i]) {
        if (tag(slots_[i]) == (h >> 32) && strs_[idx(slots_[i])] == strs_[id]) break;  // duplicate: first id wins
        i = (i + 1) & mask_;
      }
      if (!slots_[i]) slots_[i] = ((h >> 32) << 32) | (id + 1);
    }
  }
  int32_t find(std::string_view s) const {  // -1 if absent
    if (slots_.empty()) return -1;
    const uint64_t h = fast_hash(s);
    for (size_t i = h & mask_; slots_[i]; i = (i + 1) & mask_)
      if (tag(slots_[i]) == (h >> 32) && strs_[idx(slots_[i])] == s) return static_cast<int32_t>(idx(slots_[i]));
    return -1;
  }
  const std::vector<std::string>& strings() const { return strs_; }

 private:
  static uint64_t tag(uint64_t slot) { return slot >> 32; }
  static size_t idx(uint64_t slot) { return size_t(slot & 0xffffffffu) - 1; }
  std::vector<std::string> strs_;
  std::vector<uint64_t> slots_;
  size_t mask_ = 0;
};

// (left id, right id) -> (rank, merged id), open addressing with linear probing.
class PairTable {
 public:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, {kNone, -1});
    mask_ = cap - 1;
  }
  // Keeps the first (lowest-rank) entry when a pair repeats, as the reference does.
  void insert(int32_t a, int32_t b, uint32_t rank, int32_t merged) {
    const uint64_t k = key(a, b);
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      if (keys_[i] == k) return;
      if (keys_[i] == kEmpty) { keys_[i] = k; vals_[i] = {rank, merged}; return; }
    }
  }
  // Rank (kNone if the pair does not merge) and merged id.
  std::pair<uint32_t, int32_t> find(int32_t a, int32_t b) const {
    const uint64_t k = key(a, b);
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      if (keys_[i] == k) return vals_[i];
      if (keys_[i] == kEmpty) return {kNone, -1};
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t key(int32_t a, int32_t b) {
    return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  }
  size_t slot(uint64_t k) const { return size_t((k * 0x9E3779B97F4A7C15ull) >> 17) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<std::pair<uint32_t, int32_t>> vals_;
  size_t mask_ = 0;
};

class Bpe {
 public:
  // `byte_level`: the pre-tokenizer chain ends in ByteLevel, so words arrive as raw bytes.
  // `tj` holds the streamed model.vocab / model.merges; `m` the rest of the model object.
  void load(const JsonCtx& ctx, const json& m, const std::string& path, bool byte_level, TokenizerJson& tj) {
    byte_level_ = byte_level;
    if (!m.is_object()) ctx.fail(path, "expected an object");
    const std::string type = ctx.str_or(m, "type", path, "BPE");
    if (type != "BPE") ctx.unsupported(path + ".type", "model type \"" + type + "\"");
    if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].is_number() && m["dropout"].get<double>() != 0.0)
      ctx.unsupported(path + ".dropout", "BPE dropout (encoding would be random)");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (!ctx.str_or(m, k, path, "").empty()) ctx.unsupported(path + "." + k, std::string(k) + " in BPE");
    byte_fallback_ = ctx.boolean_or(m, "byte_fallback", path, false);
    fuse_unk_ = ctx.boolean_or(m, "fuse_unk", path, false);
    ignore_merges_ = ctx.boolean_or(m, "ignore_merges", path, false);

    if (!tj.has_vocab) ctx.fail(path + ".vocab", "missing (expected an object {token: id})");
    int64_t max_id = -1;
    for (const auto& [tok, id] : tj.vocab) {
      if (id < 0 || id > std::numeric_limits<int32_t>::max() / 2)
        ctx.fail(path + ".vocab[\"" + tok + "\"]", "id " + std::to_string(id) + " out of range");
      max_id = std::max<int64_t>(max_id, id);
    }
    std::vector<std::string> by_id(size_t(max_id + 1));
    present_.assign(size_t(max_id + 1), false);
    for (auto& [tok, id] : tj.vocab) {
      if (present_[size_t(id)]) ctx.fail(path + ".vocab", "id " + std::to_string(id) + " used twice");
      present_[size_t(id)] = true;
      by_id[size_t(id)] = std::move(tok);
    }
    tj.vocab = {};
    vocab_.build(std::move(by_id), present_);
    const auto& toks = vocab_.strings();

    const std::string unk = ctx.str_or(m, "unk_token", path, "");
    if (!unk.empty()) {
      unk_id_ = vocab_.find(unk);
      if (unk_id_ < 0) ctx.fail(path + ".unk_token", "\"" + unk + "\" is not in the vocabulary");
    }

    // Initial symbols: byte ids (byte-level) or single-character ids + <0xNN> fallback ids.
    byte_id_.fill(-1);
    fallback_id_.fill(-1);
    if (byte_level_) {
      const auto& t = byte_level_tables();
      for (int b = 0; b < 256; ++b) byte_id_[b] = vocab_.find(t.byte_to_utf8[b]);
      if (ignore_merges_) {  // whole-word lookups need the raw-byte spelling of every token
        std::vector<std::string> raw(toks.size());
        std::vector<bool> ok(toks.size(), false);
        for (size_t id = 0; id < toks.size(); ++id)
          if (present_[id]) ok[id] = byte_level_decode(toks[id], raw[id]);
        raw_vocab_.build(std::move(raw), ok);
      }
    } else {
      bmp_id_.assign(0x10000, -1);
      for (size_t id = 0; id < toks.size(); ++id) {
        const std::string& tok = toks[id];
        if (!present_[id] || tok.empty() || utf8_seq_len(tok, 0) != tok.size()) continue;  // one character only
        size_t i = 0;
        const char32_t c = next_cp(tok, i);
        if (c < 0x10000) bmp_id_[c] = int32_t(id); else astral_id_[c] = int32_t(id);
      }
      if (byte_fallback_)
        for (int b = 0; b < 256; ++b) {
          static const char* hex = "0123456789ABCDEF";
          fallback_id_[b] = vocab_.find(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
        }
    }

    if (!tj.has_merges) ctx.fail(path + ".merges", "missing (expected an array)");
    pairs_.reserve(tj.merges.size());
    std::string ab;
    bool space_inside = false;  // does some merged token have the metaspace after another character?
    for (size_t r = 0; r < tj.merges.size(); ++r) {
      const auto& [a, b] = tj.merges[r];
      const int32_t ia = vocab_.find(a), ib = vocab_.find(b);
      const auto where = [&] { return path + ".merges[" + std::to_string(r) + "]"; };
      if (ia < 0) ctx.fail(where(), "merge names unknown token \"" + a + "\"");
      if (ib < 0) ctx.fail(where(), "merge names unknown token \"" + b + "\"");
      ab.assign(a).append(b);
      const int32_t iab = vocab_.find(ab);
      if (iab < 0) ctx.fail(where(), "merged token \"" + ab + "\" is not in the vocabulary");
      pairs_.insert(ia, ib, static_cast<uint32_t>(r), iab);
      if (!space_inside && !byte_level_) {
        for (size_t k = ab.find(kMetaspace, 1); k != std::string::npos; k = ab.find(kMetaspace, k + 1))
          if (ab.compare(k - kMetaspace.size(), kMetaspace.size(), kMetaspace) != 0) { space_inside = true; break; }
      }
    }
    tj.merges = {};
    // SentencePiece-style words can be cut before every "▁" that follows another character
    // when no merge can join across such a point: identical result, and the pieces are short
    // (cacheable, scan-merged) instead of one word per stretch of text.
    const int32_t meta = vocab_.find(kMetaspace);
    metaspace_split_ = !byte_level_ && !space_inside && meta >= 0 && !ignore_merges_;
  }

  size_t size() const { return vocab_.strings().size(); }
  const std::vector<std::string>& id_to_token() const { return vocab_.strings(); }
  int32_t find(std::string_view tok) const { return vocab_.find(tok); }  // -1 if absent
  bool has_id(int32_t id) const { return id >= 0 && size_t(id) < present_.size() && present_[size_t(id)]; }

  // Appends the ids of one pre-tokenized word.
  void encode_word(std::string_view w, std::vector<int32_t>& out) const {
    if (metaspace_split_ && w.size() > kMaxCachedWord) {
      size_t b = 0;
      for (size_t k = w.find(kMetaspace, 1); k != std::string_view::npos; k = w.find(kMetaspace, k + 1))
        if (w.compare(k - kMetaspace.size(), kMetaspace.size(), kMetaspace) != 0) {
          encode_piece(w.substr(b, k - b), out);
          b = k;
        }
      encode_piece(w.substr(b), out);
      return;
    }
    encode_piece(w, out);
  }

 private:
  static constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // ▁

  void encode_piece(std::string_view w, std::vector<int32_t>& out) const {
    if (w.empty()) return;
    if (ignore_merges_) {
      const int32_t id = byte_level_ ? raw_vocab_.find(w) : vocab_.find(w);
      if (id >= 0) { out.push_back(id); return; }
    }
    const bool cacheable = w.size() <= kMaxCachedWord;
    WordCache* cache = cacheable ? &local_cache() : nullptr;
    if (cache) {
      if (auto it = cache->find(w); it != cache->end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const size_t before = out.size();
    std::vector<int32_t>& sym = scratch();
    sym.clear();
    initial_symbols(w, sym);
    if (sym.size() <= kScanLimit) merge_scan(sym);
    else merge_heap(sym);
    out.insert(out.end(), sym.begin(), sym.end());
    if (cache && cache->size() < kMaxCacheEntries)
      cache->emplace(std::string(w), std::vector<int32_t>(out.begin() + long(before), out.end()));
  }

  static constexpr size_t kMaxCachedWord = 64, kMaxCacheEntries = 50000, kScanLimit = 48;

  // Word -> ids cache, one per thread and model (no locks on the hot path). Models are told
  // apart by a serial number, never by address, so a cache can never outlive its meaning.
  using WordCache = std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>>;
  WordCache& local_cache() const {
    thread_local uint64_t last_serial = 0;
    thread_local WordCache* last = nullptr;
    if (last_serial != serial_ || !last) {
      thread_local std::unordered_map<uint64_t, WordCache> caches;
      last = &caches[serial_];
      last_serial = serial_;
    }
    return *last;
  }
  static uint64_t next_serial() {
    static std::atomic<uint64_t> n{0};
    return ++n;
  }

  static std::vector<int32_t>& scratch() {
    thread_local std::vector<int32_t> v;
    return v;
  }

  void initial_symbols(std::string_view w, std::vector<int32_t>& sym) const {
    if (byte_level_) {
      for (unsigned char c : w) {
        // A vocabulary missing a byte character cannot spell it; the reference drops it too
        // unless an unk token exists.
        if (byte_id_[c] >= 0) sym.push_back(byte_id_[c]);
        else if (unk_id_ >= 0) push_unk(sym, 1);
      }
      flush_unk(sym);
      return;
    }
    for (size_t i = 0; i < w.size();) {
      const size_t start = i;
      const char32_t c = next_cp(w, i);
      int32_t id = -1;
      if (c < 0x10000) id = bmp_id_[c];
      else if (auto it = astral_id_.find(c); it != astral_id_.end()) id = it->second;
      if (id >= 0) { flush_unk(sym); sym.push_back(id); continue; }
      if (byte_fallback_) {
        bool all = true;
        for (size_t k = start; k < i; ++k) all = all && fallback_id_[static_cast<unsigned char>(w[k])] >= 0;
        if (all) {  // note: a pending unk is not flushed first, as in the reference
          for (size_t k = start; k < i; ++k) sym.push_back(fallback_id_[static_cast<unsigned char>(w[k])]);
          continue;
        }
      }
      if (unk_id_ >= 0) push_unk(sym, i - start);
    }
    flush_unk(sym);
  }
  // Pending unk handling: fuse_unk folds consecutive unknown characters into one unk.
  void push_unk(std::vector<int32_t>& sym, size_t) const {
    if (pending_unk_ && fuse_unk_) return;
    if (pending_unk_) sym.push_back(unk_id_);
    pending_unk_ = true;
  }
  void flush_unk(std::vector<int32_t>& sym) const {
    if (pending_unk_) { sym.push_back(unk_id_); pending_unk_ = false; }
  }

  void merge_scan(std::vector<int32_t>& s) const {
    if (s.size() < 2) return;
    std::array<uint32_t, kScanLimit> rank;
    std::array<int32_t, kScanLimit> nid;
    size_t n = s.size();
    for (size_t i = 0; i + 1 < n; ++i) std::tie(rank[i], nid[i]) = pairs_.find(s[i], s[i + 1]);
    while (n > 1) {
      size_t best = 0;
      for (size_t i = 1; i + 1 < n; ++i) if (rank[i] < rank[best]) best = i;
      if (rank[best] == PairTable::kNone) break;
      s[best] = nid[best];
      for (size_t i = best + 1; i + 1 < n; ++i) { s[i] = s[i + 1]; rank[i] = rank[i + 1]; nid[i] = nid[i + 1]; }
      --n;
      if (best > 0) std::tie(rank[best - 1], nid[best - 1]) = pairs_.find(s[best - 1], s[best]);
      if (best + 1 < n) std::tie(rank[best], nid[best]) = pairs_.find(s[best], s[best + 1]);
    }
    s.resize(n);
  }

  // The reference's algorithm for long words: a heap of (rank, position) candidates over a
  // linked list of symbols; stale candidates are recognised by their merged id.
  void merge_heap(std::vector<int32_t>& s) const {
    const size_t n = s.size();
    std::vector<int32_t> prev(n), next(n);
    std::vector<bool> alive(n, true);
    for (size_t i = 0; i < n; ++i) { prev[i] = int32_t(i) - 1; next[i] = i + 1 < n ? int32_t(i + 1) : -1; }
    struct Cand { uint32_t rank; uint32_t pos; int32_t nid; };
    const auto later = [](const Cand& x, const Cand& y) { return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos; };
    std::vector<Cand> heap;
    heap.reserve(n);
    for (size_t i = 0; i + 1 < n; ++i) {
      auto [r, id] = pairs_.find(s[i], s[i + 1]);
      if (r != PairTable::kNone) heap.push_back({r, uint32_t(i), id});
    }
    std::make_heap(heap.begin(), heap.end(), later);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      const Cand top = heap.back();
      heap.pop_back();
      const size_t p = top.pos;
      if (!alive[p] || next[p] < 0) continue;
      const size_t q = size_t(next[p]);
      if (pairs_.find(s[p], s[q]).second != top.nid) continue;
      s[p] = top.nid;
      alive[q] = false;
      next[p] = next[q];
      if (next[q] >= 0) prev[size_t(next[q])] = int32_t(p);
      if (prev[p] >= 0) {
        auto [r, id] = pairs_.find(s[size_t(prev[p])], s[p]);
        if (r != PairTable::kNone) { heap.push_back({r, uint32_t(prev[p]), id}); std::push_heap(heap.begin(), heap.end(), later); }
      }
      if (next[p] >= 0) {
        auto [r, id] = pairs_.find(s[p], s[size_t(next[p])]);
        if (r != PairTable::kNone) { heap.push_back({r, uint32_t(p), id}); std::push_heap(heap.begin(), heap.end(), later); }
      }
    }
    size_t k = 0;
    for (size_t i = 0; i < n; ++i) if (alive[i]) s[k++] = s[i];
    s.resize(k);
  }

  bool byte_level_ = false, byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  bool metaspace_split_ = false;
  int32_t unk_id_ = -1;
  FlatVocab vocab_, raw_vocab_;  // raw_vocab_: raw bytes -> id (byte-level with ignore_merges)
  std::vector<bool> present_;
  std::array<int32_t, 256> byte_id_{}, fallback_id_{};
  std::vector<int32_t> bmp_id_;
  std::unordered_map<char32_t, int32_t> astral_id_;
  PairTable pairs_;
  uint64_t serial_ = next_serial();
  static inline thread_local bool pending_unk_ = false;
};

}  // namespace fathom::tok::detail
