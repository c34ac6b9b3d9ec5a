"""Built-in teachers for the built-in examples, trained here by tools/train_teachers.py and committed."""
