"""Short lyrics-like sentences per language, for speech and for the WORLD singing renditions."""

from __future__ import annotations

import numpy as np

SENTENCES: dict[str, tuple[str, ...]] = {
    "ja": (
        "空の向こうに、小さな星が光っている。",
        "今日は風が優しくて、花の香りがする。",
        "夜の街を歩けば、遠くで鐘が鳴る。",
        "あなたの声を聞くと、心が温かくなる。",
        "雨の音を聞きながら、静かに眠りたい。",
        "海の色が青くて、波がきらきら光る。",
        "春の朝、桜の花びらが舞い落ちる。",
        "夢の中で、私は高く飛んでいた。",
        "小さな手をつないで、坂道を登ろう。",
        "月の光が窓辺を白く照らしている。",
        "歌を歌えば、悲しみも遠くへ消える。",
        "ありがとうと言える日を待っている。",
        "森の奥で、鳥たちが朝を歌う。",
        "冬の夜は長くて、雪が静かに降る。",
        "明日もきっと、晴れると信じている。",
        "川の流れに、木の葉がゆっくり揺れる。",
        "遠い町から、手紙がひとつ届いた。",
        "窓を開けると、夏の匂いがした。",
        "君と見た夕焼けを、今も覚えている。",
        "光の中で、僕らはもう一度笑う。",
        "道に迷っても、空を見上げればいい。",
        "秋の風が、金色の野原を渡っていく。",
        "時計の針が、真夜中を指している。",
        "忘れないで、この歌を口ずさんで。",
        "白い雲が、ゆっくり山を越えていく。",
        "ひとりきりの部屋で、ピアノを弾いた。",
        "花火の音が、夏の夜空に響いた。",
        "静かな湖に、星がいっぱい映っている。",
        "さよならの代わりに、笑顔を見せて。",
        "長い旅の終わりに、家の灯りが見える。",
    ),
    "en": (
        "The morning light is falling on the quiet hills.",
        "I hear your voice across the silver water.",
        "We walked along the river when the night was young.",
        "Hold my hand and sing until the rain is gone.",
        "The stars are shining over the sleeping town.",
        "Every little dream will find its way back home.",
        "A gentle wind is blowing through the golden fields.",
        "Remember me when summer turns to autumn.",
        "The ocean waves are rolling in the evening glow.",
        "Open the window and let the sunshine in.",
        "My heart is singing like a bird in spring.",
        "We dance beneath the moon until the dawn.",
        "The road is long, but I will carry on.",
        "Snow is falling softly on the empty street.",
        "Tell me a story from the days gone by.",
        "The bells are ringing in the valley far away.",
        "I will be waiting by the old oak tree.",
        "Light a candle in the window for me.",
        "The river knows the secrets of the sea.",
        "Sing a song of morning, sing a song of joy.",
        "Over the mountain the eagle is flying free.",
        "Your laughter is the music of my days.",
        "Close your eyes and listen to the rain.",
        "The city lights are sparkling in the dark.",
        "Follow the music wherever it may lead.",
        "Blue skies are calling us to come outside.",
        "The garden blooms with roses red and white.",
        "We sailed away upon a silver boat.",
        "A thousand voices singing all as one.",
        "Goodnight my love, the day is finally done.",
    ),
}


# Phrases of 2-3 s for tiny test corpora.
SHORT: dict[str, tuple[str, ...]] = {
    "ja": ("夜空に星が光っている。", "花の香りが風に舞う。", "静かな雨の音を聞く。", "青い海がきらきら光る。",
           "月の光が窓を照らす。"),
    "en": ("Sing me a song tonight.", "The stars are shining bright.", "Hold my hand and sing along.",
           "The rain is gone away.", "Come back home to me."),
}


def pick_text(language: str, rng: np.random.Generator, short: bool = False) -> str:
    """One sentence in ``language`` ("ja" or "en"), chosen by ``rng``; ``short`` picks a 2-3 s phrase."""
    pool = (SHORT if short else SENTENCES)[language]
    return pool[int(rng.integers(len(pool)))]
