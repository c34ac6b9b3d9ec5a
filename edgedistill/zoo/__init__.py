"""Built-in teachers for the built-in examples, trained here and committed: the image CNNs by
tools/train_teachers.py, the langid_bert/ and docs_bert/ text classifiers (transformers folders) by
tools/train_text_teacher.py."""
