// depth: the metrics of "How Do LLMs Use Their Depth?" for a model and a text file (and/or a
// multiple-choice prompt file), through the logit lens or a tuned lens. Writes CSVs and SVG line
// plots into --out. Readout index i = 0..L is hidden_states[i] (i = 0: embeddings, i = L: the
// model's output); see docs/lenses.md.
//
//   depth --text ../shared/data/tinystories/TinyStories-valid-head30KB.txt --out depth_out
//   depth -m model_dir --lens lens_dir --text wiki.txt --mc questions.jsonl
//   depth -m model_dir --text wiki.txt --freq-text big_corpus.txt --freq-counts counts.txt
//
// --text is read in windows of --context tokens, BOS first (lens::TokenWindows, as lens training
// cuts its data). Readouts run a block of --block-rows tokens per matrix product
// (lens/batch_readout.hpp); --per-token reads one token at a time (the slow reference path, for
// timing and checks).
// --freq-counts FILE: load token counts from FILE if it exists, else count --freq-text (or
// --text) and save them there, so a large corpus is tokenized once.
//
// Files: earliest_layer.{csv,svg}, target_rank.{csv,svg}, bucket_shares.{csv,svg},
// decision_flip.{csv,svg}, and with --mc option_ranks.{csv,svg}. --mc is JSON Lines
// (eval/mc_prompts.hpp):
//   {"prompt": "... Answer:", "options": [" A", " B", " C", " D"], "answer": 2}
// ("answer", the index of the correct option, is optional). Each option is scored by the first
// token it adds after the prompt: encode(prompt + option) minus encode(prompt).
#include <cmath>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common.hpp"
#include "fathom/core/text_file.hpp"
#include "fathom/depth/metrics.hpp"
#include "fathom/eval/mc_prompts.hpp"
#include "fathom/eval/rank_summary.hpp"
#include "fathom/lens/train_data.hpp"
#include "fathom/lens/tuned_lens.hpp"
#include "fathom/report/line_plot.hpp"

using namespace fathom;
namespace fs = std::filesystem;

namespace {

struct Args {
  examples::ModelArgs model;
  std::string text, freq_text, freq_counts, lens, mc, out = "depth_out", target = "final";
  int context = 256, max_tokens = 2048, block_rows = int(lens::BatchReader::kDefaultRows);
  bool per_token = false;
};

std::ofstream open_csv(const fs::path& p) {
  std::ofstream o(p);
  if (!o) throw IoError(p.string(), "", "cannot open for writing");
  return o;
}

template <class Lens>
void analyse_text(const Args& a, const Model& m, const tok::AnyTokenizer& tok, const Lens& lens) {
  const size_t L = m.n_layers(), R = L + 1;
  // Token frequencies of the corpus, counted with the model's tokenizer (or loaded, counted once).
  depth::TokenFrequency freq;
  const std::string corpus = a.freq_text.empty() ? a.text : a.freq_text;
  if (!a.freq_counts.empty() && fs::exists(a.freq_counts)) {
    freq = depth::TokenFrequency::load(a.freq_counts, m.vocab());
    std::cerr << "frequencies: loaded " << a.freq_counts << "\n";
  } else {
    freq.add_text_file(tok, corpus);
    if (!a.freq_counts.empty()) freq.save(a.freq_counts, m.vocab(), fs::path(corpus).filename().string());
  }
  std::cerr << "frequencies: " << freq.distinct() << " distinct tokens\n";

  const auto text = read_text_file(a.text);
  auto ids = tok.encode(text, false);
  if (ids.size() > size_t(a.max_tokens)) ids.resize(size_t(a.max_tokens));
  if (ids.empty()) throw DataError(a.text, "", "no tokens in the text");
  const auto target = a.target == "next" ? depth::Target::NextToken : depth::Target::FinalTop1;

  depth::BucketStats buckets(R, freq);
  std::vector<std::vector<int64_t>> trajectories;  // per token: [R] rank of its target
  Session s(m, SessionOptions{a.context + 1, KvStrategy::Propagate});
  const lens::TokenWindows windows{ids, size_t(a.context), tok.bos_id()};
  double readout_s = 0;  // forward passes + readouts + statistics
  for (size_t k = 0; k < windows.count(/*keep_tail=*/true); ++k) {
    const std::vector<int32_t> piece = windows[k];
    s.reset();
    const auto t0 = std::chrono::steady_clock::now();
    auto prof = a.per_token ? depth::profile_tokens_per_token(s, piece, lens, target)
                            : depth::profile_tokens(s, piece, lens, target, size_t(a.block_rows));
    readout_s += examples::seconds_since(t0);
    for (size_t t = tok.bos_id() >= 0 ? 1 : 0; t < prof.size(); ++t) {
      buckets.add(prof[t].top1);
      trajectories.push_back(prof[t].rank);
    }
    std::cerr << "\r" << windows.end(k) << "/" << ids.size() << " tokens" << std::flush;
  }
  std::cerr << "\nreadouts (" << (a.per_token ? "per token" : "batched") << "): " << readout_s
            << " s for " << ids.size() << " tokens x " << R << " readouts\n";

  const fs::path out(a.out);
  // Earliest layer with rank <= k.
  const auto ks = depth::default_ks();
  auto curve = depth::earliest_layer_curve(trajectories, ks);
  {
    auto o = open_csv(out / "earliest_layer.csv");
    o << "k,mean_earliest_readout,crossed,items\n";
    for (size_t j = 0; j < ks.size(); ++j)
      o << curve.k[j] << "," << curve.mean_layer[j] << "," << curve.crossed[j] << "," << curve.items
        << "\n";
    fathom::report::Series sr{"target = " + a.target, {}, curve.mean_layer};
    for (auto k : curve.k) sr.x.push_back(double(k));
    fathom::report::LinePlotOptions po;
    po.markers = false;
    po.title = "Earliest readout with rank <= k";
    po.x_label = "k", po.y_label = "readout index (hidden_states)", po.log_x = true;
    fathom::report::write_line_plot_svg(out / "earliest_layer.svg", {sr}, po);
  }
  // Mean log10 rank and top-1 share of the target per readout.
  {
    const auto sum = eval::summarize_target_ranks(trajectories);
    auto o = open_csv(out / "target_rank.csv");
    o << "readout,mean_log10_rank,median_rank,top1_share\n";
    fathom::report::Series lr{"mean log10 rank", {}, {}}, t1{"top-1 share", {}, {}};
    for (size_t i = 0; i < R; ++i) {
      o << i << "," << sum.mean_log10_rank[i] << "," << sum.median_rank[i] << ","
        << sum.top1_share[i] << "\n";
      lr.x.push_back(double(i)), lr.y.push_back(sum.mean_log10_rank[i]);
      t1.x.push_back(double(i)), t1.y.push_back(sum.top1_share[i]);
    }
    fathom::report::LinePlotOptions po;
    po.markers = false;
    po.title = "Rank of the target per readout";
    po.x_label = "readout index (hidden_states)", po.y_label = "value";
    fathom::report::write_line_plot_svg(out / "target_rank.svg", {lr, t1}, po);
  }
  // Frequency-bucket shares of the top-1 and decision flips.
  {
    auto os = open_csv(out / "bucket_shares.csv");
    auto of = open_csv(out / "decision_flip.csv");
    os << "readout,bucket,share\n";
    of << "readout,bucket,flip_ratio\n";
    std::vector<fathom::report::Series> shares(depth::kBuckets), flips(depth::kBuckets + 1);
    for (size_t b = 0; b < depth::kBuckets; ++b)
      shares[b].name = flips[b].name = std::string("freq rank ") + depth::kBucketNames[b];
    flips[depth::kBuckets].name = "all";
    for (size_t i = 0; i < R; ++i) {
      for (size_t b = 0; b < depth::kBuckets; ++b) {
        os << i << "," << depth::kBucketNames[b] << "," << buckets.share(i, b) << "\n";
        of << i << "," << depth::kBucketNames[b] << "," << buckets.flip_ratio(i, b) << "\n";
        shares[b].x.push_back(double(i)), shares[b].y.push_back(buckets.share(i, b));
        flips[b].x.push_back(double(i)), flips[b].y.push_back(buckets.flip_ratio(i, b));
      }
      of << i << ",all," << buckets.flip_ratio(i) << "\n";
      flips[depth::kBuckets].x.push_back(double(i));
      flips[depth::kBuckets].y.push_back(buckets.flip_ratio(i));
    }
    fathom::report::LinePlotOptions po;
    po.markers = false;
    po.x_label = "readout index (hidden_states)", po.y_min = 0, po.y_max = 1;
    po.title = "Top-1 predictions by corpus-frequency bucket", po.y_label = "share";
    fathom::report::write_line_plot_svg(out / "bucket_shares.svg", shares, po);
    po.title = "Decision flips (top-1 differs from the final one)", po.y_label = "flip ratio";
    fathom::report::write_line_plot_svg(out / "decision_flip.svg", flips, po);
  }
  std::cerr << "analysed " << trajectories.size() << " tokens\n";
}

template <class Lens>
void analyse_mc(const Args& a, const Model& m, const tok::AnyTokenizer& tok, const Lens& lens) {
  const size_t R = m.n_layers() + 1;
  const auto items = eval::read_mc_jsonl(a.mc);
  auto o = open_csv(fs::path(a.out) / "option_ranks.csv");
  o << "item,readout,option,token,vocab_rank,among_rank,is_answer\n";
  eval::OptionRankSummary sum(R);
  Session s(m);
  for (size_t item = 0; item < items.size(); ++item) {
    const eval::McPrompt& mc = items[item];
    auto prompt = tok.encode(mc.prompt, true);
    if (prompt.empty()) throw DataError(mc.where, "prompt", "encodes to no tokens");
    if (int64_t(prompt.size()) > s.capacity())
      throw DataError(mc.where, "prompt", "longer than the session's context");
    const auto opt_ids = depth::option_tokens_after(tok, mc.prompt, mc.options);
    s.reset();
    const auto r = depth::option_ranks(s, prompt, opt_ids, lens);
    for (size_t i = 0; i < R; ++i)
      for (size_t q = 0; q < mc.options.size(); ++q)
        o << item << "," << i << "," << q << "," << opt_ids[q] << "," << r.vocab[i][q] << ","
          << r.among[i][q] << "," << (int(q) == mc.answer) << "\n";
    sum.add(r, mc.answer);
  }
  const bool answers = sum.answers() > 0;
  fathom::report::Series all{
      std::string(answers ? "other options" : "options") + ": mean log10 vocab rank", {}, {}};
  fathom::report::Series ans{"answer: mean log10 vocab rank", {}, {}};
  fathom::report::Series among{"answer: mean rank among options", {}, {}};
  for (size_t i = 0; i < R; ++i) {
    all.x.push_back(double(i)), ans.x.push_back(double(i)), among.x.push_back(double(i));
    all.y.push_back(sum.other_log10_rank(i));
    ans.y.push_back(sum.answer_log10_rank(i));
    among.y.push_back(sum.answer_among_rank(i));
  }
  std::vector<fathom::report::Series> series = {all};
  if (answers) series.push_back(ans), series.push_back(among);
  fathom::report::LinePlotOptions po;
  po.markers = false;
  po.title = "Multiple-choice options per readout";
  po.x_label = "readout index (hidden_states)", po.y_label = "rank";
  fathom::report::write_line_plot_svg(fs::path(a.out) / "option_ranks.svg", series, po);
  std::cerr << "scored " << sum.items() << " multiple-choice items\n";
}

template <class Lens>
void run(const Args& a, const Model& m, const tok::AnyTokenizer& tok, const Lens& lens) {
  if (!a.text.empty()) analyse_text(a, m, tok, lens);
  if (!a.mc.empty()) analyse_mc(a, m, tok, lens);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Per-layer readouts: earliest layer, frequency buckets, decision flips, option ranks"};
  Args a;
  a.model.add(app);
  app.add_option("--text", a.text, "text file to analyse");
  app.add_option("--freq-text", a.freq_text, "corpus for token frequencies (default: --text)");
  app.add_option("--freq-counts", a.freq_counts,
                 "token counts file: loaded if it exists, else counted from the corpus and saved");
  app.add_option("--block-rows", a.block_rows, "tokens per readout product")->check(CLI::Range(1, 1 << 16));
  app.add_flag("--per-token", a.per_token, "read one token at a time (slow reference path)");
  app.add_option("--lens", a.lens, "tuned-lens folder (config.json + params.safetensors); default: logit lens");
  app.add_option("--mc", a.mc, "multiple-choice JSON Lines (prompt, options, optional answer)");
  app.add_option("-o,--out", a.out, "output folder");
  app.add_option("--target", a.target, "tracked token: final (model's own top-1) or next (next input token)")
      ->check(CLI::IsMember({"final", "next"}));
  app.add_option("--context", a.context, "tokens per chunk")->check(CLI::Range(2, 1 << 20));
  app.add_option("--max-tokens", a.max_tokens, "tokens of --text analysed")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  return examples::guarded([&] {
    if (a.text.empty() && a.mc.empty()) throw UsageError("", "--text/--mc", "give at least one");
    auto m = a.model.load();
    auto tok = a.model.load_tokenizer();
    fs::create_directories(a.out);
    if (a.lens.empty()) {
      run(a, *m, tok, lens::LogitLens{m->n_layers()});
    } else {
      auto tl = lens::TunedLens::load(a.lens);
      tl.check_fits(*m, a.lens);
      run(a, *m, tok, tl);
    }
    std::cout << "wrote " << a.out << "\n";
    return 0;
  });
}
