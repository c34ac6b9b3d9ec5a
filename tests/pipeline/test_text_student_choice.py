"""What `--tokenizer auto` and the default text family choose (pipeline/text_inputs.auto_tokenizer,
students.default_family): words and short strings read bytes into a textcnn, sentences and passages read the
teacher's vocabulary into a bag of embeddings, and nothing reads a vocabulary that no teacher carries."""

import pytest

from edgedistill.data.text import TextCorpus, TextSplit
from edgedistill.pipeline.text_inputs import VOCAB_FROM_WORDS, auto_tokenizer, median_words
from edgedistill.students import default_family


def _corpus(texts):
    return TextCorpus(TextSplit(tuple(texts), tuple("a" for _ in texts)), None, "test")


WORDS = ["haus", "maison", "casa", "garten", "jardin"]
SENTENCES = ["the cat sat on the mat", "a dog ran", "it rains today in town", "one two", "see the sea now"]


def test_words_read_bytes_and_sentences_read_the_teachers_vocabulary():
    assert median_words(WORDS) == 1 and median_words(SENTENCES) == 4
    assert auto_tokenizer(_corpus(WORDS), has_teacher_tokenizer=True) == "bytes"
    assert auto_tokenizer(_corpus(SENTENCES), has_teacher_tokenizer=True) == "vocab"
    assert auto_tokenizer(_corpus(SENTENCES), has_teacher_tokenizer=False) == "bytes"  # no vocabulary to cut


@pytest.mark.parametrize("words, expected", [(VOCAB_FROM_WORDS - 1, "bytes"), (VOCAB_FROM_WORDS, "vocab")])
def test_the_threshold_is_the_median_word_count(words, expected):
    texts = [" ".join(["w"] * words)] * 3 + [" ".join(["w"] * 40)] * 2  # a few long texts do not move the median
    assert auto_tokenizer(_corpus(texts), has_teacher_tokenizer=True) == expected


def test_the_default_text_family_follows_the_tokenizer():
    assert default_family("text", "bytes") == "textcnn"
    assert default_family("text", "vocab") == "bow"
    assert default_family("text") == "textcnn" and default_family("image", "vocab") == "cnn"
