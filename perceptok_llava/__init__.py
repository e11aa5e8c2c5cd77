"""perceptok_llava: perception vocabularies, curriculum LoRA training and constrained
generation for LLaVA (Hugging Face transformers).

The plugin imports ``perceptok``; ``perceptok`` never imports the plugin. Install it with
``pip install "perceptok[llava]"``.
"""
