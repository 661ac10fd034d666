//! The published `config.json` fields of the hub models the app lists, so that their size and
//! training memory are known before anything is downloaded (and the benchmark has their shapes).

use super::ModelConfig;

const TABLE: &[(&str, &str)] = &[
    (
        "gpt2",
        r#"{"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_embd": 768,
        "n_layer": 12, "n_head": 12}"#,
    ),
    (
        "distilgpt2",
        r#"{"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024,
        "n_embd": 768, "n_layer": 6, "n_head": 12}"#,
    ),
    (
        "gpt2-medium",
        r#"{"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024,
        "n_embd": 1024, "n_layer": 24, "n_head": 16}"#,
    ),
    (
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        r#"{"model_type": "llama", "vocab_size": 49152,
        "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": true}"#,
    ),
    (
        "HuggingFaceTB/SmolLM2-360M-Instruct",
        r#"{"model_type": "llama", "vocab_size": 49152,
        "hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 32,
        "num_attention_heads": 15, "num_key_value_heads": 5, "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": true}"#,
    ),
    (
        "Qwen/Qwen2.5-0.5B-Instruct",
        r#"{"model_type": "qwen2", "vocab_size": 151936,
        "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true}"#,
    ),
];

/// The config of a listed hub model (`gpt2`, `HuggingFaceTB/SmolLM2-135M-Instruct`, …).
pub fn published_config(id: &str) -> Option<ModelConfig> {
    let (_, json) = TABLE.iter().find(|(name, _)| *name == id)?;
    Some(
        ModelConfig::from_json(serde_json::from_str(json).expect("valid JSON"))
            .expect("a valid config"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_config_parses_to_its_published_size() {
        // Parameter counts as the hub's model cards give them (tied heads counted once).
        for (id, millions) in [
            ("gpt2", 124.4),
            ("distilgpt2", 81.9),
            ("gpt2-medium", 354.8),
            ("HuggingFaceTB/SmolLM2-135M-Instruct", 134.5),
            ("HuggingFaceTB/SmolLM2-360M-Instruct", 361.8),
            ("Qwen/Qwen2.5-0.5B-Instruct", 494.0),
        ] {
            let n = published_config(id).unwrap().num_params() as f64 / 1e6;
            assert!((n - millions).abs() / millions < 0.01, "{id}: {n}M");
        }
        assert!(published_config("nobody/nothing").is_none());
    }
}
