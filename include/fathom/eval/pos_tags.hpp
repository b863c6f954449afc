#pragma once
// Part-of-speech tagged text for the earliest-layer analysis per word class (examples/depth
// --pos). A tagger outside C++ (tools/pos_tag.pl: Lingua::EN::Tagger) writes JSON Lines, one
// document a line:
//   {"text": "...", "words": [{"start": 0, "end": 3, "tag": "DT", "class": "DET"}, ...]}
// with byte offsets into "text". token_classes() aligns a document's tokens with its words: a
// token that begins a word (its first non-space byte is the word's first byte) gets the word's
// class; tokens inside a word, spaces and untagged text get "". Classes are the tagger's coarse
// classes; is_function_class() splits them into function and content words.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/core/text_file.hpp"
#include "fathom/io/json.hpp"

namespace fathom::eval {

struct TaggedWord {
  size_t start = 0, end = 0;  // byte range in the document's text
  std::string tag, cls;       // Penn tag, coarse class
};

struct TaggedText {
  std::string text;
  std::vector<TaggedWord> words;  // ascending, non-overlapping
  std::string where;              // "<file>:<line>"
};

// Errors name "<file>:<line>" and the field; the whole file is checked before a model runs.
inline std::vector<TaggedText> parse_tagged_jsonl(std::string_view data, const std::string& file) {
  std::vector<TaggedText> out;
  io::for_each_json_line(data, file, [&](const io::Json& j, const std::string& where) {
    TaggedText d;
    d.where = where;
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      throw DataError(d.where, "text", "expected an object with a string \"text\"");
    d.text = j["text"].get<std::string>();
    if (!j.contains("words") || !j["words"].is_array())
      throw DataError(d.where, "words", "expected an array");
    size_t prev_end = 0;
    for (size_t k = 0; k < j["words"].size(); ++k) {
      const auto& w = j["words"][k];
      const std::string f = "words[" + std::to_string(k) + "]";
      if (!w.is_object()) throw DataError(d.where, f, "expected an object");
      for (const char* key : {"start", "end"})
        if (!w.contains(key) || !w[key].is_number_unsigned())
          throw DataError(d.where, f + "." + key, "expected a byte offset >= 0");
      for (const char* key : {"tag", "class"})
        if (!w.contains(key) || !w[key].is_string())
          throw DataError(d.where, f + "." + key, "expected a string");
      TaggedWord tw{w["start"].get<size_t>(), w["end"].get<size_t>(), w["tag"].get<std::string>(),
                    w["class"].get<std::string>()};
      if (tw.start >= tw.end || tw.end > d.text.size() || tw.start < prev_end)
        throw DataError(d.where, f, "byte range [" + std::to_string(tw.start) + ", " + std::to_string(tw.end) +
                                        ") is empty, outside the text or overlaps the previous word");
      prev_end = tw.end;
      d.words.push_back(std::move(tw));
    }
    out.push_back(std::move(d));
  });
  if (out.empty()) throw DataError(file, "", "no tagged documents");
  return out;
}

inline std::vector<TaggedText> read_tagged_jsonl(const std::filesystem::path& path) {
  return parse_tagged_jsonl(read_text_file(path), path.string());
}

// The class of each token of `ids` (the encoding of doc.text, a BOS first allowed): "" unless the
// token begins a tagged word. Token byte ranges come from decoding growing prefixes, which a
// byte-level BPE reproduces exactly; a token whose prefix does not decode to a prefix of the text
// (a tokenizer that normalises) gets "" as well.
template <class Tokenizer>
std::vector<std::string> token_classes(const Tokenizer& tok, const TaggedText& doc, std::span<const int32_t> ids) {
  std::vector<std::string> out(ids.size());
  std::vector<int32_t> prefix;
  size_t begin = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    prefix.push_back(ids[t]);
    const std::string dec = tok.decode(prefix, true);
    const size_t end = dec.size();
    const bool aligned = end <= doc.text.size() && doc.text.compare(0, end, dec) == 0;
    if (aligned && end > begin) {
      size_t first = begin;  // the token's first non-space byte
      while (first < end && (doc.text[first] == ' ' || doc.text[first] == '\t')) ++first;
      auto it = std::lower_bound(doc.words.begin(), doc.words.end(), first,
                                 [](const TaggedWord& w, size_t b) { return w.start < b; });
      if (it != doc.words.end() && it->start == first && first < end) out[t] = it->cls;
    }
    if (aligned) begin = end;
  }
  return out;
}

// Function words (closed classes and punctuation) vs content words (open classes).
inline bool is_function_class(std::string_view cls) {
  return cls == "DET" || cls == "ADP" || cls == "PRON" || cls == "CONJ" || cls == "PART" || cls == "PUNCT";
}
inline bool is_content_class(std::string_view cls) {
  return cls == "NOUN" || cls == "PROPN" || cls == "VERB" || cls == "ADJ" || cls == "ADV" || cls == "NUM";
}

}  // namespace fathom::eval
