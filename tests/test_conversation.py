"""The conversation the page keeps, saved in pieces and restored after a reload."""

from __future__ import annotations

from retrieval.serving.answer import Answer, Choice, Kind
from retrieval.serving.conversation import Conversation, Turn, turn_key
from retrieval.serving.walkthrough import Walkthrough


def saved(conversation: Conversation) -> dict:
    out = {"head": conversation.head_json()}
    for n, turn in enumerate(conversation.turns):
        out[turn_key("c", n)] = turn.to_json()
    return out


def test_every_field_survives_saving(tiny_assistant, tiny_kb):
    asked = tiny_assistant.ask("how do i top up")          # an ask-back: choices, lead and details
    answered = tiny_assistant.ask("GV怎么充值")              # an answer with steps and related questions
    conversation = Conversation([Turn("how do i top up", asked, 1), Turn("GV怎么充值", answered, 2, 0, "•••• note")],
                                Walkthrough("gv-topup", "zh", step=1), walk_open=False, provider="google_voice",
                                topic="topup_steps", language="zh")
    store = saved(conversation)
    back = Conversation.restore(store["head"], lambda n: store.get(turn_key("c", n)), tiny_kb)
    assert back == Conversation(
        [Turn(t.said, Answer(**{**t.answer.__dict__, "hits": ()}),
              t.interaction, t.rating, t.comment) for t in conversation.turns],
        conversation.walk, False, "google_voice", "topup_steps", "zh")
    assert back.turns[0].answer.choices[0] == asked.choices[0] and isinstance(back.turns[0].answer.choices[0], Choice)
    assert back.turns[0].answer.kind is Kind.ASK_PROVIDER and back.turns[0].answer.lead == asked.lead


def test_damaged_or_foreign_copies_are_not_misread(tiny_assistant, tiny_kb):
    turn = Turn("gv top up", tiny_assistant.ask("gv top up"), 1)
    store = saved(Conversation([turn, turn], provider="google_voice"))
    def load(n):
        return store.get(turn_key("c", n))

    for head in (None, [], {}, {"format": 99, "turns": 1}, {"format": 1, "turns": "2"}, {"format": 1, "turns": -1}):
        assert Conversation.restore(head, load, tiny_kb) is None, head
    store[turn_key("c", 1)] = {"said": "x"}                         # a damaged turn: read up to it
    back = Conversation.restore(store["head"], load, tiny_kb)
    assert [t.said for t in back.turns] == ["gv top up"]
    strange = {**store["head"], "provider": "nope", "language": "fr", "walk": {"entry_id": "gone"}}
    back = Conversation.restore(strange, load, tiny_kb)
    assert back.provider is None and back.language == "auto" and back.walk is None
    odd = turn.to_json() | {"rating": True, "interaction": "7"}
    assert Turn.from_json(odd).rating is None and Turn.from_json(odd).interaction is None


def test_the_topic_outlasts_small_talk_and_the_provider_a_decline():
    conv = Conversation()
    conv.remember(Answer("Tello怎么充值", "zh", "tello", Kind.ANSWER, "**steps**", topic="topup_steps"))
    assert (conv.provider, conv.topic) == ("tello", "topup_steps")
    for kind in (Kind.SMALL_TALK, Kind.NOT_UNDERSTOOD, Kind.EMPTY):   # "thanks!", "asdf", "": nothing about a topic
        conv.remember(Answer("x", "zh", "tello", kind, "ok"))
        assert (conv.provider, conv.topic) == ("tello", "topup_steps")
    conv.remember(Answer("Mint 的 APN 怎么设置", "zh", "mint_mobile", Kind.DECLINE, "not ours"))
    assert (conv.provider, conv.topic) == ("tello", None)        # a declined question's provider is not carried
    conv.remember(Answer("那 Mint 呢", "zh", "mint_mobile", Kind.ANSWER, "**refund**", topic="refund"))
    assert (conv.provider, conv.topic) == ("mint_mobile", "refund")


def test_a_message_with_no_letters_is_answered_in_the_conversations_language():
    conv = Conversation()
    assert conv.answer_language("👍", fallback="en") == "en"           # nothing said yet: the browser's
    conv.turns.append(Turn("how do i top up tello", Answer("how do i top up tello", "en", "tello", Kind.ANSWER, "x")))
    assert conv.answer_language("👍", fallback="zh") == "en"           # then the conversation's
    assert conv.answer_language("？？？", fallback="zh") == "en"
    assert conv.answer_language("谢谢", fallback="en") is None          # letters: the message's own
    conv.language = "zh"
    assert conv.answer_language("thanks", fallback="en") == "zh"        # the user's choice wins
