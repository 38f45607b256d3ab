"""A Hugging Face Llama in a LightningModule, on synthetic tokens: profile it with
python scripts/profile.py --module examples/hf_llama.py:HFLlama --module-args '{"layers": 2}' --accelerator cpu"""
import lightning as L
import torch
from transformers import LlamaConfig, LlamaForCausalLM


class HFLlama(L.LightningModule):
    def __init__(self, layers=2, width=64, heads=4, vocab=512, batch_size=4, seq_len=64, batches=8):
        super().__init__()
        self.save_hyperparameters()
        self.model = LlamaForCausalLM(LlamaConfig(
            hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers, num_attention_heads=heads,
            num_key_value_heads=heads, vocab_size=vocab, max_position_embeddings=seq_len))

    def training_step(self, batch, batch_idx):
        return self.model(**batch, labels=batch["input_ids"]).loss

    def predict_step(self, batch, batch_idx):
        return self.model(**batch).logits

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-4)

    def train_dataloader(self):  # synthetic token ids, every token real (attention_mask all ones)
        h = self.hparams
        ids = torch.randint(0, h.vocab, (h.batches * h.batch_size, h.seq_len))
        rows = [{"input_ids": i, "attention_mask": torch.ones_like(i)} for i in ids]
        return torch.utils.data.DataLoader(rows, batch_size=h.batch_size)
