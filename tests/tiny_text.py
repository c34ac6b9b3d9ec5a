"""A tiny `transformers` text classifier and a JSONL of sentences, built in code (no download): a WordPiece tokenizer
trained here on three languages' words and a BertForSequenceClassification from a config, saved with
save_pretrained. The teacher's weights are random: the tests that use it check wiring (what the teacher reads,
which tensors a loss compares), not accuracy."""

import json
from pathlib import Path

import numpy as np
import torch

WORDS = {"de": ["haus", "garten", "schnell", "wasser", "baum", "strasse", "kirche", "brot"],
         "fr": ["maison", "jardin", "rapide", "eau", "arbre", "rue", "eglise", "pain"],
         "it": ["casa", "giardino", "veloce", "acqua", "albero", "strada", "chiesa", "pane"]}


def write_sentences(path: Path, n: int = 240, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        lang = sorted(WORDS)[i % 3]
        lines.append(json.dumps({"text": " ".join(rng.choice(WORDS[lang], size=int(rng.integers(2, 7)))),
                                 "label": lang}))
    path.write_text("\n".join(lines) + "\n")
    return path


def save_tiny_bert(folder: Path, heads: int = 2, layers: int = 2, hidden: int = 32) -> Path:
    """A BertForSequenceClassification (3 labels, `layers` layers of `hidden` units and `heads` heads, 32
    positions) and its tokenizer.json in `folder`."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.decoder = decoders.WordPiece()  # as every BERT tokenizer.json has: '##' pieces join their word again
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator([w for ws in WORDS.values() for w in ws] * 4, trainers.WordPieceTrainer(
        vocab_size=120, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"], show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")),
                                                 ("[SEP]", tok.token_to_id("[SEP]"))])
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=heads, intermediate_size=2 * hidden,
                                  max_position_embeddings=32, num_labels=3, pad_token_id=0)
    transformers.BertForSequenceClassification(cfg).eval().save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    return folder
