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
// timing and checks). --products exact (default) multiplies the unembedding's exact values with
// unquantised states, as the lens trainer does; --products model uses the model's own prompt
// kernels (the same exact products by default; int8 activations for a quantised unembedding
// under --prefill int8).
// --freq-counts FILE: load token counts from FILE if it exists, else count --freq-text (or
// --text) and save them there, so a large corpus is tokenized once.
//
// --pos FILE: POS-tagged documents (tools/pos_tag.pl, eval/pos_tags.hpp); per word class, the
// earliest readout at which the next token (when the model predicts it correctly) enters the
// top-k: pos_earliest.{csv,svg}, pos_summary.csv.
// --task mmlu|boolq: the benchmark's own k-shot prompts (eval/mc_tokens.hpp) as option-constrained
// prompts, like --mc.
// --layer-axis block-output: the depth paper's code convention (lens b reads block b's output,
// lens::BlockOutputAxis); default hidden-states (translator i reads hidden_states[i]).
//
// Files: earliest_layer.{csv,svg}, target_rank.{csv,svg}, bucket_shares.{csv,svg},
// decision_flip.{csv,svg}, and with --mc/--task option_ranks.{csv,svg} (all items and, as the
// paper's code filters them, only items whose final readout ranks the answer first among the
// options: option_ranks_correct.svg, option_summary.csv). --mc is JSON Lines
// (eval/mc_prompts.hpp):
//   {"prompt": "... Answer:", "options": [" A", " B", " C", " D"], "answer": 2}
// ("answer", the index of the correct option, is optional). Each option is scored by the first
// token it adds after the prompt: encode(prompt + option) minus encode(prompt).
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "common.hpp"
#include "fathom/core/text_file.hpp"
#include "fathom/depth/metrics.hpp"
#include "fathom/eval/boolq.hpp"
#include "fathom/eval/mc_prompts.hpp"
#include "fathom/eval/mc_tokens.hpp"
#include "fathom/eval/mmlu.hpp"
#include "fathom/eval/pos_tags.hpp"
#include "fathom/eval/rank_summary.hpp"
#include "fathom/eval/subset.hpp"
#include "fathom/lens/train_data.hpp"
#include "fathom/lens/tuned_lens.hpp"
#include "fathom/report/line_plot.hpp"

using namespace fathom;
namespace fs = std::filesystem;

namespace {

struct Args {
  examples::ModelArgs model;
  std::string text, freq_text, freq_counts, lens, mc, out = "depth_out", target = "final";
  std::string pos, task, layer_axis = "hidden-states", products = "exact";
  int context = 256, max_tokens = 2048, block_rows = int(lens::BatchReader::kDefaultRows);
  int shots = 4, items = 200, pos_docs = 200;
  bool per_token = false;

  kernels::Rows readout_products() const {
    return products == "model" ? kernels::Rows::Gemm : kernels::Rows::Exact;
  }
};

std::ofstream open_csv(const fs::path& p) {
  std::ofstream o(p);
  if (!o) throw IoError(p.string(), "", "cannot open for writing");
  return o;
}

// Token frequencies of the corpus, counted with the model's tokenizer (or loaded, counted once).
depth::TokenFrequency frequencies(const Args& a, const Model& m, const tok::AnyTokenizer& tok) {
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
  return freq;
}

template <class Lens>
void analyse_text(const Args& a, const Model& m, const tok::AnyTokenizer& tok, const Lens& lens) {
  const size_t L = m.n_layers(), R = L + 1;
  const depth::TokenFrequency freq = frequencies(a, m, tok);

  const auto text = read_text_file(a.text);
  auto ids = tok.encode(text, false);
  if (ids.size() > size_t(a.max_tokens)) ids.resize(size_t(a.max_tokens));
  if (ids.empty()) throw DataError(a.text, "", "no tokens in the text");
  const auto target = a.target == "next" ? depth::Target::NextToken : depth::Target::FinalTop1;

  depth::BucketStats buckets(R, freq);
  std::vector<std::vector<int64_t>> trajectories;  // per token: [R] rank of its target
  Session s(m, SessionOptions{a.context + 1, KvStrategy::Propagate});
  lens::BatchReader reader(m, size_t(a.block_rows), a.readout_products());  // for every window
  const lens::TokenWindows windows{ids, size_t(a.context), tok.bos_id()};
  double readout_s = 0;  // forward passes + readouts + statistics
  for (size_t k = 0; k < windows.count(/*keep_tail=*/true); ++k) {
    const std::vector<int32_t> piece = windows[k];
    s.reset();
    const auto t0 = std::chrono::steady_clock::now();
    auto prof = a.per_token ? depth::profile_tokens_per_token(s, piece, lens, target)
                            : depth::profile_tokens(s, piece, lens, target, reader);
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

// Option-constrained prompts from --mc (prompt strings) or --task (the benchmark's prompts).
std::vector<eval::McTokens> mc_items(const Args& a, const tok::AnyTokenizer& tok, int64_t capacity) {
  std::vector<eval::McTokens> out;
  if (!a.mc.empty()) {
    for (const auto& mc : eval::read_mc_jsonl(a.mc)) {
      eval::McTokens m{mc.where, tok.encode(mc.prompt, true), {}, mc.answer};
      if (m.prompt.empty()) throw DataError(mc.where, "prompt", "encodes to no tokens");
      if (int64_t(m.prompt.size()) > capacity) throw DataError(mc.where, "prompt", "longer than the session's context");
      m.option_tokens = depth::option_tokens_after(tok, mc.prompt, mc.options);
      out.push_back(std::move(m));
    }
  }
  if (!a.task.empty()) {
    eval::Task task = a.task == "mmlu" ? eval::read_mmlu(shared_file("data/mmlu").string(), {}, "test")
                                       : eval::read_boolq(shared_file("data/boolq/dev.jsonl").string());
    const auto items = eval::stratified_subset(task.items, size_t(a.items), 1234);
    size_t skipped = 0;
    auto t = eval::mc_tokens(tok, task, items, {eval::Preset::LmEval, a.task == "mmlu" ? a.shots : 0, false},
                             size_t(capacity), &skipped);
    std::cerr << a.task << ": " << t.size() << " prompts (" << (a.task == "mmlu" ? a.shots : 0) << "-shot, plain text), "
              << skipped << " left out (options share a first token)\n";
    out.insert(out.end(), t.begin(), t.end());
  }
  return out;
}

template <class Lens>
void analyse_mc(const Args& a, const Model& m, const tok::AnyTokenizer& tok, const Lens& lens) {
  const size_t R = m.n_layers() + 1;
  Session s(m);
  const auto items = mc_items(a, tok, s.capacity());
  auto o = open_csv(fs::path(a.out) / "option_ranks.csv");
  o << "item,readout,option,token,vocab_rank,among_rank,is_answer\n";
  eval::OptionRankSummary sum(R), correct(R);  // all items; items the final readout gets right
  for (size_t item = 0; item < items.size(); ++item) {
    const auto& mc = items[item];
    s.reset();
    const auto r = depth::option_ranks(s, mc.prompt, mc.option_tokens, lens, a.readout_products());
    for (size_t i = 0; i < R; ++i)
      for (size_t q = 0; q < mc.option_tokens.size(); ++q)
        o << item << "," << i << "," << q << "," << mc.option_tokens[q] << "," << r.vocab[i][q] << ","
          << r.among[i][q] << "," << (int(q) == mc.answer) << "\n";
    sum.add(r, mc.answer);
    if (mc.answer >= 0 && r.among[R - 1][size_t(mc.answer)] == 1) correct.add(r, mc.answer);
  }
  auto so = open_csv(fs::path(a.out) / "option_summary.csv");
  so << "items,readout,answer_log10_vocab_rank,other_log10_vocab_rank,answer_among_rank,answer_top_share\n";
  for (const auto* sm : {&sum, &correct})
    for (size_t i = 0; i < R; ++i)
      so << (sm == &sum ? "all" : "correct") << "," << i << "," << sm->answer_log10_rank(i) << ","
         << sm->other_log10_rank(i) << "," << sm->answer_among_rank(i) << "," << sm->answer_top_share(i) << "\n";
  auto plot = [&](const eval::OptionRankSummary& sm, const std::string& file, const std::string& title) {
    const bool answers = sm.answers() > 0;
    fathom::report::Series all{std::string(answers ? "other options" : "options") + ": mean log10 vocab rank", {}, {}};
    fathom::report::Series ans{"answer: mean log10 vocab rank", {}, {}};
    fathom::report::Series among{"answer: mean rank among options", {}, {}};
    for (size_t i = 0; i < R; ++i) {
      all.x.push_back(double(i)), ans.x.push_back(double(i)), among.x.push_back(double(i));
      all.y.push_back(sm.other_log10_rank(i));
      ans.y.push_back(sm.answer_log10_rank(i));
      among.y.push_back(sm.answer_among_rank(i));
    }
    std::vector<fathom::report::Series> series = {all};
    if (answers) series.push_back(ans), series.push_back(among);
    fathom::report::LinePlotOptions po;
    po.markers = false;
    po.title = title;
    po.x_label = "readout index (hidden_states)", po.y_label = "rank";
    fathom::report::write_line_plot_svg(fs::path(a.out) / file, series, po);
  };
  plot(sum, "option_ranks.svg", "Options per readout (" + std::to_string(sum.items()) + " prompts)");
  if (correct.items())
    plot(correct, "option_ranks_correct.svg",
         "Options per readout, answered correctly at the output (" + std::to_string(correct.items()) + " prompts)");
  std::cerr << "scored " << sum.items() << " multiple-choice items, " << correct.items()
            << " answered correctly at the final readout\n";
}

// Earliest readout at which a correctly predicted next token enters the top-k, per word class.
template <class Lens>
void analyse_pos(const Args& a, const Model& m, const tok::AnyTokenizer& tok, const Lens& lens) {
  const size_t L = m.n_layers();
  auto docs = eval::read_tagged_jsonl(a.pos);
  if (docs.size() > size_t(a.pos_docs)) docs.resize(size_t(a.pos_docs));
  std::map<std::string, std::vector<std::vector<int64_t>>> by_class;  // class -> rank trajectories
  std::map<std::string, size_t> seen;                                 // class -> predicted tokens
  Session s(m, SessionOptions{a.context + 1, KvStrategy::Propagate});
  lens::BatchReader reader(m, size_t(a.block_rows), a.readout_products());  // for every document
  for (size_t d = 0; d < docs.size(); ++d) {
    auto ids = tok.encode(docs[d].text, true);
    if (ids.size() > size_t(a.context)) ids.resize(size_t(a.context));
    if (ids.size() < 2) continue;
    const auto cls = eval::token_classes(tok, docs[d], ids);
    s.reset();
    const auto prof = depth::profile_tokens(s, ids, lens, depth::Target::NextToken, reader);
    for (size_t t = 0; t < prof.size(); ++t) {
      const std::string& c = cls[t + 1];  // the class of the token being predicted
      if (c.empty()) continue;
      const std::string group = eval::is_function_class(c) ? "function" : eval::is_content_class(c) ? "content" : "";
      for (const std::string& k : {c, group}) {
        if (k.empty()) continue;
        ++seen[k];
        if (prof[t].rank[L] == 1) by_class[k].push_back(prof[t].rank);  // correct at the output
      }
    }
    std::cerr << "\r" << d + 1 << "/" << docs.size() << " documents" << std::flush;
  }
  std::cerr << "\n";
  const auto ks = depth::default_ks();
  auto o = open_csv(fs::path(a.out) / "pos_earliest.csv");
  o << "class,k,mean_earliest_readout,crossed,items\n";
  auto sum = open_csv(fs::path(a.out) / "pos_summary.csv");
  sum << "class,predicted_tokens,correct_at_output,earliest_top1,earliest_top5\n";
  std::vector<fathom::report::Series> series;
  for (const auto& [c, traj] : by_class) {
    const auto curve = depth::earliest_layer_curve(traj, ks);
    fathom::report::Series sr{c + " (" + std::to_string(traj.size()) + ")", {}, {}};
    for (size_t j = 0; j < ks.size(); ++j) {
      o << c << "," << curve.k[j] << "," << curve.mean_layer[j] << "," << curve.crossed[j] << "," << curve.items << "\n";
      sr.x.push_back(double(curve.k[j])), sr.y.push_back(curve.mean_layer[j]);
    }
    const auto at = [&](int64_t k) { return depth::earliest_layer_curve(traj, std::span<const int64_t>(&k, 1)).mean_layer[0]; };
    sum << c << "," << seen[c] << "," << traj.size() << "," << at(1) << "," << at(5) << "\n";
    if (traj.size() >= 20) series.push_back(std::move(sr));  // classes too rare to plot stay in the CSV
  }
  fathom::report::LinePlotOptions po;
  po.markers = false, po.log_x = true;
  po.title = "Earliest readout with rank <= k, per word class (correct next-token predictions)";
  po.x_label = "k", po.y_label = "readout index (hidden_states)";
  fathom::report::write_line_plot_svg(fs::path(a.out) / "pos_earliest.svg", series, po);
}

template <class Lens>
void run(const Args& a, const Model& m, const tok::AnyTokenizer& tok, const Lens& lens) {
  if (!a.text.empty()) analyse_text(a, m, tok, lens);
  if (!a.mc.empty() || !a.task.empty()) analyse_mc(a, m, tok, lens);
  if (!a.pos.empty()) analyse_pos(a, m, tok, lens);
}

// The lens as the chosen layer axis reads it.
template <class Lens>
void run_axis(const Args& a, const Model& m, const tok::AnyTokenizer& tok, const Lens& lens) {
  if (a.layer_axis == "block-output") run(a, m, tok, lens::BlockOutputAxis<Lens>{&lens});
  else run(a, m, tok, lens);
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
  app.add_option("--products", a.products,
                 "readout products: exact (the unembedding's exact values x f32 states, as lens training) "
                 "or model (the model's prompt kernels: the same unless --prefill int8)")
      ->check(CLI::IsMember({"exact", "model"}));
  app.add_option("--lens", a.lens, "tuned-lens folder (config.json + params.safetensors); default: logit lens");
  app.add_option("--mc", a.mc, "multiple-choice JSON Lines (prompt, options, optional answer)");
  app.add_option("--pos", a.pos, "POS-tagged JSON Lines (tools/pos_tag.pl): earliest readout per word class");
  app.add_option("--pos-docs", a.pos_docs, "documents of --pos analysed")->check(CLI::PositiveNumber);
  app.add_option("--task", a.task, "option ranks on a benchmark's own prompts: mmlu (k-shot) or boolq")
      ->check(CLI::IsMember({"mmlu", "boolq"}));
  app.add_option("--items", a.items, "--task: items (stratified subset, fixed seed)")->check(CLI::PositiveNumber);
  app.add_option("--shots", a.shots, "--task mmlu: examples from the dev set")->check(CLI::Range(0, 5));
  app.add_option("--layer-axis", a.layer_axis,
                 "hidden-states (translator i reads hidden_states[i]) or block-output (the paper's code: lens b reads block b's output)")
      ->check(CLI::IsMember({"hidden-states", "block-output"}));
  app.add_option("-o,--out", a.out, "output folder");
  app.add_option("--target", a.target, "tracked token: final (model's own top-1) or next (next input token)")
      ->check(CLI::IsMember({"final", "next"}));
  app.add_option("--context", a.context, "tokens per chunk")->check(CLI::Range(2, 1 << 20));
  app.add_option("--max-tokens", a.max_tokens, "tokens of --text analysed")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  return examples::guarded([&] {
    if (a.text.empty() && a.mc.empty() && a.task.empty() && a.pos.empty() && a.freq_counts.empty())
      throw UsageError("", "--text/--mc/--task/--pos/--freq-counts", "give at least one");
    auto m = a.model.load();
    auto tok = a.model.load_tokenizer();
    fs::create_directories(a.out);
    if (a.text.empty() && a.mc.empty() && a.task.empty() && a.pos.empty()) {  // only count tokens
      if (a.freq_text.empty()) throw UsageError("", "--freq-text", "the corpus to count");
      frequencies(a, *m, tok);
      return 0;
    }
    if (a.lens.empty()) {
      run_axis(a, *m, tok, lens::LogitLens{m->n_layers()});
    } else {
      auto tl = lens::TunedLens::load(a.lens);
      tl.check_fits(*m, a.lens);
      run_axis(a, *m, tok, tl);
    }
    std::cout << "wrote " << a.out << "\n";
    return 0;
  });
}
