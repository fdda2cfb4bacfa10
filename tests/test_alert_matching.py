"""Topic matching against new articles: what is alerted, what never is, and the quote."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from index.alerts import DEFAULT_THRESHOLD, AlertMatcher, process_new_versions
from index.build import reindex
from index.embedders.hashing import HashingEmbedder
from index.errors import IndexMismatchError
from index.store import LoadedIndex, load_index, read_changes
from index.subscriptions import SubscriptionStore
from tests.conftest import ArticleWriter

# The hashing test embedder scores shared words, not meaning: its own scale.
HASHING_THRESHOLD = 0.15
TROOPS = "Russian troops in Central Asia"
CHIPS = "PlayStation chip processor"

EXERCISE = (
    "Russian troops based in Tajikistan began joint exercises with Central Asia allies on "
    "Monday, the defence ministry in Moscow said.",
    "The drills near the Afghan border involve about 2,000 Russian troops and will last a week, "
    "the ministry added. Central Asia has hosted several such exercises this year.",
)
PASTA = (
    "Chefs in Naples say the secret of good pasta is plenty of salted water and patience.",
    "A new cookbook collects recipes for sauces from every region of Italy.",
)


class Env:
    """A corpus, an index and a subscription store in tmp_path, with a hashing embedder."""

    def __init__(self, tmp_path: Path, corpus: Path, embedder: HashingEmbedder) -> None:
        self.corpus = corpus
        self.index_dir = tmp_path / "idx"
        self.embedder = embedder
        self.store = SubscriptionStore.in_data_dir(tmp_path / "data")
        self.matcher = AlertMatcher(embedder, HASHING_THRESHOLD)

    def reindex(self):
        return reindex([self.corpus], self.index_dir, self.embedder)

    def index(self) -> LoadedIndex:
        return load_index(self.index_dir)

    def process(self):
        return process_new_versions(self.store, self.index_dir, self.index(), self.matcher)

    def pending_docs(self, chat_id: int | None = None) -> list[str]:
        return [p.doc_id for p in self.store.pending(chat_id)]


@pytest.fixture
def env(tmp_path: Path, small_corpus: Path, fake_embedder: HashingEmbedder) -> Env:
    e = Env(tmp_path, small_corpus, fake_embedder)
    e.reindex()
    return e


def test_new_article_on_topic_matches_and_unrelated_does_not(
    env: Env, write_article: ArticleWriter
):
    troops = env.store.add(1, TROOPS, 10)
    env.store.add(2, "cooking pasta recipes", 20)
    env.store.add(3, CHIPS, 30)
    env.process()  # the first version is a full rebuild: nothing
    assert env.store.pending() == []
    write_article("tca/exercise.txt", "Russian troops start drills in Tajikistan", *EXERCISE)
    report = env.reindex()
    assert report.added == ["tca/exercise.txt"]
    result = env.process()
    assert result.new_articles == ["tca/exercise.txt"]
    [alert] = env.store.pending()
    assert (alert.chat_id, alert.doc_id, alert.subscription_id) == (
        1,
        "tca/exercise.txt",
        troops.id,
    )
    assert alert.topic == TROOPS and alert.title.startswith("Russian troops start drills")
    assert "Russian troops" in alert.quote and alert.score >= env.matcher.threshold
    assert env.store.cursor() == report.version


def test_unrelated_new_article_alerts_nothing(env: Env, write_article: ArticleWriter):
    env.store.add(1, TROOPS, 10)
    env.process()
    write_article("food/pasta.txt", "Naples chefs share pasta secrets", *PASTA)
    env.reindex()
    result = env.process()
    assert result.new_articles == ["food/pasta.txt"] and result.matches == []
    assert env.store.pending() == []


def test_reindex_that_adds_nothing_alerts_nothing(env: Env, write_article: ArticleWriter):
    env.store.add(1, TROOPS, 10)
    env.process()
    write_article("tca/exercise.txt", "Russian troops start drills in Tajikistan", *EXERCISE)
    env.reindex()
    assert env.process().queued == 1
    again = env.reindex()
    assert not again.wrote_new_version
    result = env.process()
    assert result.versions == [] and result.queued == 0
    assert env.pending_docs() == ["tca/exercise.txt"]
    # Even re-processing the same versions from scratch queues nothing twice.
    env.store.set_cursor("v000001", force=True)
    assert env.process().queued == 0
    assert env.pending_docs() == ["tca/exercise.txt"]


def test_full_rebuild_alerts_nothing(
    tmp_path: Path, small_corpus: Path, write_article: ArticleWriter, fake_embedder
):
    write_article("tca/exercise.txt", "Russian troops start drills in Tajikistan", *EXERCISE)
    env = Env(tmp_path, small_corpus, fake_embedder)
    env.store.add(1, TROOPS, 10)
    env.reindex()
    result = env.process()
    assert result.versions == ["v000001"] and result.new_articles == []
    assert env.store.pending() == []
    # The index is deleted and rebuilt while the store remembers an old cursor.
    shutil.rmtree(env.index_dir)
    env.reindex()
    assert read_changes(env.index_dir)[-1].full_rebuild
    assert env.process().queued == 0 and env.store.pending() == []


def test_changed_article_not_alerted(env: Env, write_article: ArticleWriter):
    env.store.add(1, TROOPS, 10)
    env.process()
    # The sport article is rewritten to be all about Russian troops: changed, not new.
    write_article("sport/match.txt", "Russian troops start drills in Tajikistan", *EXERCISE)
    report = env.reindex()
    assert report.changed == ["sport/match.txt"] and report.added == []
    assert env.process().queued == 0 and env.store.pending() == []


def test_duplicate_of_known_content_not_alerted(env: Env, small_corpus: Path):
    env.store.add(1, "Russian military base in Tajikistan", 10)
    env.process()
    # A known article moved to another path: a new doc id, but content the archive held.
    (small_corpus / "tca/base.txt").rename(small_corpus / "tca/base-moved.txt")
    report = env.reindex()
    assert report.added == ["tca/base-moved.txt"] and report.removed == ["tca/base.txt"]
    assert read_changes(env.index_dir)[-1].added == []
    assert env.process().queued == 0
    # A copy of it beside the original is a duplicate the loader skips.
    shutil.copy(small_corpus / "tca/base-moved.txt", small_corpus / "tca/copy.txt")
    env.reindex()
    assert env.process().queued == 0 and env.store.pending() == []


def test_catch_up_after_downtime_alerts_each_article_once(env: Env, write_article: ArticleWriter):
    env.store.add(1, TROOPS, 10)
    env.store.add(2, TROOPS, 20)
    env.process()
    # The bot is down: three re-indexes run.
    write_article("tca/exercise.txt", "Russian troops start drills in Tajikistan", *EXERCISE)
    env.reindex()
    write_article("food/pasta.txt", "Naples chefs share pasta secrets", *PASTA)
    env.reindex()
    write_article(
        "tca/kyrgyz.txt",
        "Russian troops reinforce Kant air base",
        "Russian troops arrived at the Kant air base in Kyrgyzstan, strengthening the "
        "Russian military presence in Central Asia, officials said.",
    )
    env.reindex()
    # Back up: one pass catches up on all three versions.
    result = env.process()
    assert result.versions == ["v000002", "v000003", "v000004"]
    assert sorted(env.pending_docs(1)) == ["tca/exercise.txt", "tca/kyrgyz.txt"]
    assert sorted(env.pending_docs(2)) == ["tca/exercise.txt", "tca/kyrgyz.txt"]
    for alert in env.store.pending():
        env.store.mark_sent([alert.id])
    # Restarted again: nothing repeats.
    assert env.process().queued == 0
    env.store.set_cursor("v000001", force=True)
    assert env.process().queued == 0 and env.store.pending() == []


def test_one_alert_per_chat_and_article_with_the_best_topic(env: Env, write_article):
    env.store.add(1, "Russian troops", 10)
    best = env.store.add(1, "Russian troops exercises in Tajikistan Central Asia", 10)
    env.process()
    write_article("tca/exercise.txt", "Russian troops start drills in Tajikistan", *EXERCISE)
    env.reindex()
    result = env.process()
    assert len(result.matches) == 1 and result.queued == 1
    [alert] = env.store.pending()
    assert alert.subscription_id == best.id


def test_topic_subscribed_after_a_version_is_not_alerted_for_it(env: Env, write_article):
    env.store.add(1, TROOPS, 10)
    env.process()
    write_article("tca/exercise.txt", "Russian troops start drills in Tajikistan", *EXERCISE)
    env.reindex()
    # That re-index happened an hour before the topic was subscribed.
    changes = [
        replace(c, created_at="2000-01-01T00:00:00+00:00") for c in read_changes(env.index_dir)
    ]
    report = process_new_versions(
        env.store, env.index_dir, env.index(), env.matcher, changes=changes
    )
    assert report.new_articles == ["tca/exercise.txt"] and report.queued == 0
    assert env.store.cursor() == changes[-1].version


def test_versions_newer_than_the_loaded_index_wait(env: Env, write_article: ArticleWriter):
    env.store.add(1, TROOPS, 10)
    env.process()
    old = env.index()
    write_article("tca/exercise.txt", "Russian troops start drills in Tajikistan", *EXERCISE)
    env.reindex()
    report = process_new_versions(env.store, env.index_dir, old, env.matcher)
    assert report.waiting_for_index and report.queued == 0
    assert env.store.cursor() == old.version  # not moved past what it could not see
    assert env.process().queued == 1


def test_removed_before_processing_and_paused_chats(env: Env, small_corpus: Path, write_article):
    env.store.add(1, TROOPS, 10)
    env.store.add(2, TROOPS, 20)
    env.process()
    env.store.pause_chat(2, "Forbidden: bot was blocked by the user")
    write_article("tca/exercise.txt", "Russian troops start drills in Tajikistan", *EXERCISE)
    env.reindex()
    write_article(
        "tca/kyrgyz.txt",
        "Russian troops reinforce Kant air base",
        "Russian troops arrived at the Kant air base in Kyrgyzstan, in Central Asia.",
    )
    env.reindex()
    (small_corpus / "tca/kyrgyz.txt").unlink()  # gone again before the bot saw it
    env.reindex()
    env.process()
    assert env.pending_docs() == ["tca/exercise.txt"]
    assert env.store.pending()[0].chat_id == 1


def test_quotes_are_verbatim_substrings(env: Env, write_article: ArticleWriter):
    write_article("tca/exercise.txt", "Russian troops start drills in Tajikistan", *EXERCISE)
    write_article(
        "tech/phones.txt",
        "Mobile phones get faster chips",
        "Phone makers said on Tuesday that a new generation of mobile chips would arrive. "
        "The chips, made by Samsung, double the speed of the processor. Prices were not given.",
        "Analysts said mobile phone technology was moving faster than ever, with the Cell "
        "processor design influencing handset chips.",
    )
    env.reindex()
    index = env.index()
    topics = [TROOPS, CHIPS, "mobile phone technology", "Scottish football", "military base"]
    subs = [env.store.add(1, t, 1) for t in topics]
    matches = env.matcher.match(subs, list(index.articles), index)
    previews = [m for t in topics for m in env.matcher.preview(t, index, k=3, min_score=-1)]
    assert matches and previews
    for m in matches + previews:
        text = index.articles[m.doc_id].text
        assert m.quote and text[m.quote_start : m.quote_start + len(m.quote)] == m.quote
        assert m.quote in text
    assert any(m.doc_id == "tca/exercise.txt" and m.topic == TROOPS for m in matches)


def test_preview_best_articles_and_nothing_yet(env: Env):
    index = env.index()
    [first, *_] = env.matcher.preview("Russian military base in Tajikistan", index, k=3)
    assert first.doc_id == "tca/base.txt" and first.subscription_id is None
    assert first.score >= env.matcher.threshold
    assert env.matcher.preview("cooking pasta recipes", index) == []
    assert len(env.matcher.preview("anything", index, k=2, min_score=-1)) == 2


def test_embedder_must_match_index(env: Env):
    other = AlertMatcher(HashingEmbedder(128))
    with pytest.raises(IndexMismatchError):
        other.preview(TROOPS, env.index())


def test_the_threshold_is_the_calibrated_one_unless_given(fake_embedder):
    assert AlertMatcher(fake_embedder).threshold == DEFAULT_THRESHOLD  # whatever the model
    assert AlertMatcher(fake_embedder, threshold=0.9).threshold == 0.9


@pytest.mark.model
def test_real_model_threshold_separates_on_and_off_topic(
    real_embedder, shared: Path, tmp_path: Path
):
    corpus = tmp_path / "real"
    (corpus / "sport").mkdir(parents=True)
    shutil.copy(shared / "corpus/seed/tca-shoigu-dushanbe.txt", corpus)
    for name in ("001.txt", "002.txt", "003.txt"):
        shutil.copy(shared / "corpus/bbc/sport" / name, corpus / "sport" / name)
    reindex([corpus], tmp_path / "idx", real_embedder)
    index = load_index(tmp_path / "idx")
    matcher = AlertMatcher(real_embedder)
    assert matcher.threshold == DEFAULT_THRESHOLD
    vector = real_embedder.embed([TROOPS])
    docs, scores, _ = matcher.article_scores(vector, list(index.articles), index)
    by_doc = dict(zip(docs, scores[0].tolist(), strict=True))
    assert by_doc["tca-shoigu-dushanbe.txt"] >= matcher.threshold
    for doc in ("sport/001.txt", "sport/002.txt", "sport/003.txt"):
        assert by_doc[doc] < matcher.threshold
    [best, *_] = matcher.preview(TROOPS, index)
    assert best.doc_id == "tca-shoigu-dushanbe.txt"
    assert best.quote in index.articles[best.doc_id].text
