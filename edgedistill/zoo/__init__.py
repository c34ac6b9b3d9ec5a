"""Built-in teachers for the built-in examples, trained here and committed: the image CNNs by
tools/train_teachers.py, the langid_bert/ text classifier (a transformers folder) by tools/train_text_teacher.py."""
