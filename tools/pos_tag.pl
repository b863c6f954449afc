#!/usr/bin/perl
# Part-of-speech tags for examples/depth --pos: tags every non-empty line of a text file with
# Lingua::EN::Tagger (a probabilistic Penn-Treebank tagger with its own lexicon; Debian package
# liblingua-en-tagger-perl) and writes JSON Lines, one document per line:
#   {"text": "<the line>", "words": [{"start": 0, "end": 3, "tag": "DT", "class": "DET"}, ...]}
# start/end are byte offsets into "text"; "tag" is the Penn tag, "class" a coarse class
# (docs/depth-results.md lists the mapping). Words the tagger rewrote so that they cannot be
# found in the line (rare: normalised quotes) are left out.
#
# Usage: perl tools/pos_tag.pl INPUT.txt OUTPUT.jsonl [--min-bytes 40] [--max-lines N] [--skip-headings]
use strict;
use warnings;
use Lingua::EN::Tagger;
use JSON::PP;

my ($in, $out, @rest) = @ARGV;
die "usage: pos_tag.pl INPUT.txt OUTPUT.jsonl [--min-bytes N] [--max-lines N] [--skip-headings]\n"
  unless defined $out;
my %opt = (min_bytes => 40, max_lines => 0, skip_headings => 0);
while (@rest) {
  my $a = shift @rest;
  if ($a eq '--min-bytes') { $opt{min_bytes} = shift @rest; }
  elsif ($a eq '--max-lines') { $opt{max_lines} = shift @rest; }
  elsif ($a eq '--skip-headings') { $opt{skip_headings} = 1; }
  else { die "pos_tag.pl: unknown option $a\n"; }
}

# Lingua's tags are lower-case Penn tags with its own names for punctuation and a few others.
my %penn = (det => 'DT', prps => 'PRP$', wps => 'WP$', pp => '.', ppc => ',', ppd => '$',
            ppl => '``', ppr => "''", ppss => ':', lrb => '(', rrb => ')');
sub coarse {
  my ($t) = @_;
  return 'NOUN'  if $t =~ /^NNS?$/;
  return 'PROPN' if $t =~ /^NNPS?$/;
  return 'VERB'  if $t =~ /^(VB[DGNPZ]?|MD)$/;
  return 'ADJ'   if $t =~ /^JJ[RS]?$/;
  return 'ADV'   if $t =~ /^(RB[RS]?|WRB)$/;
  return 'NUM'   if $t eq 'CD';
  return 'DET'   if $t =~ /^(DT|PDT|WDT)$/;
  return 'ADP'   if $t eq 'IN';
  return 'PRON'  if $t =~ /^(PRP\$?|WP\$?|EX)$/;
  return 'CONJ'  if $t eq 'CC';
  return 'PART'  if $t =~ /^(TO|RP|POS)$/;
  return 'PUNCT' if $t =~ /^([.,:\$()]|``|''|SYM|#)$/;
  return 'OTHER';
}

my $tagger = Lingua::EN::Tagger->new(stem => 0);
my $json = JSON::PP->new->canonical(1);
open(my $fi, '<:raw', $in) or die "pos_tag.pl: cannot read $in: $!\n";
open(my $fo, '>:raw', $out) or die "pos_tag.pl: cannot write $out: $!\n";
my ($docs, $words) = (0, 0);
while (my $line = <$fi>) {
  $line =~ s/\r?\n$//;
  next if length($line) < $opt{min_bytes};
  next if $opt{skip_headings} && $line =~ /^\s*=/;   # WikiText section headings
  my $tagged = $tagger->add_tags($line) // '';
  my @w;
  my $pos = 0;
  while ($tagged =~ m{<([a-z\$]+)>(.*?)</\1>}g) {
    my ($t, $word) = ($1, $2);
    $word =~ s/&lt;/</g; $word =~ s/&gt;/>/g; $word =~ s/&amp;/&/g;
    my $at = index($line, $word, $pos);
    next if $at < 0 || $word eq '';
    my $tag = $penn{$t} // uc $t;
    push @w, {start => $at, end => $at + length($word), tag => $tag, class => coarse($tag)};
    $pos = $at + length($word);
  }
  next unless @w;
  print $fo $json->encode({text => $line, words => \@w}), "\n";
  ++$docs; $words += @w;
  last if $opt{max_lines} && $docs >= $opt{max_lines};
}
close $fo or die "pos_tag.pl: writing $out failed: $!\n";
print STDERR "pos_tag.pl: $docs documents, $words tagged words -> $out\n";
