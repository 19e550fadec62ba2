//! The fake's content: files and repos (or buckets), and builders of the test checkpoints they hold.

use std::fmt::Write as _;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// A file of a fake repo.
#[derive(Clone)]
pub struct FakeFile {
    pub path: String,
    pub bytes: Arc<Vec<u8>>,
    /// Stored in LFS (redirected to the CDN), as the Hub does for weights.
    pub lfs: bool,
    /// A size the listing and the redirect claim instead of the true one (a lying server).
    pub claimed: Option<u64>,
    /// The sha256 of `bytes`, made once: the CDN finds a file by it at every request.
    digest: String,
}

impl FakeFile {
    pub fn new(path: &str, bytes: Vec<u8>, lfs: bool) -> FakeFile {
        FakeFile {
            path: path.to_owned(),
            digest: hex(&Sha256::digest(&bytes)),
            bytes: Arc::new(bytes),
            lfs,
            claimed: None,
        }
    }

    /// The file, listed as `size` bytes long whatever it holds.
    pub fn claiming(mut self, size: u64) -> FakeFile {
        self.claimed = Some(size);
        self
    }

    /// The size the listing gives.
    pub fn listed_size(&self) -> u64 {
        self.claimed.unwrap_or(self.bytes.len() as u64)
    }

    pub fn sha256(&self) -> String {
        self.digest.clone()
    }

    pub fn blob_id(&self) -> String {
        hex(&Sha256::digest(format!("blob {}", self.path)))[..40].to_owned()
    }
}

/// A repo: its files at one commit, reachable by the branch `main` and by its sha.
pub struct FakeRepo {
    pub repo: String,
    pub sha: String,
    pub files: Vec<FakeFile>,
    /// Resolve answers 401 `GatedRepo` without the right token.
    pub gated: bool,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A safetensors file of F32 tensors named `names`, each of `numel` values counting up from `seed`.
pub fn safetensors_bytes(names: &[&str], numel: usize, seed: f32) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    for (i, name) in names.iter().enumerate() {
        header.insert(
            (*name).to_owned(),
            serde_json::json!({"dtype": "F32", "shape": [numel], "data_offsets": [i * numel * 4, (i + 1) * numel * 4]}),
        );
    }
    let mut text = serde_json::Value::Object(header).to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    for i in 0..names.len() * numel {
        out.extend_from_slice(&(seed + i as f32).to_le_bytes());
    }
    out
}

/// A repo shaped like Llama-3.1-70B: its 723 tensor names in 30 shards with an index and a config.json,
/// each tensor `numel` F32 values, at commit `sha`.
pub fn llama_shaped(sha: &str, numel: usize) -> FakeRepo {
    let mut names = vec!["model.embed_tokens.weight".to_owned()];
    for layer in 0..80 {
        for part in [
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
            "input_layernorm",
            "post_attention_layernorm",
        ] {
            names.push(format!("model.layers.{layer}.{part}.weight"));
        }
    }
    names.push("model.norm.weight".to_owned());
    names.push("lm_head.weight".to_owned());
    assert_eq!(names.len(), 723);
    let mut weight_map = serde_json::Map::new();
    let mut files = vec![FakeFile::new(
        "config.json",
        br#"{"model_type":"llama"}"#.to_vec(),
        false,
    )];
    for i in 0..30 {
        let chunk = &names[i * names.len() / 30..(i + 1) * names.len() / 30];
        let shard = format!("model-{:05}-of-00030.safetensors", i + 1);
        for name in chunk {
            weight_map.insert(name.clone(), shard.clone().into());
        }
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        files.push(FakeFile::new(
            &shard,
            safetensors_bytes(&chunk, numel, i as f32),
            true,
        ));
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    files.push(FakeFile::new(
        "model.safetensors.index.json",
        index.to_string().into_bytes(),
        false,
    ));
    FakeRepo {
        repo: "org/llama-70b-shaped".into(),
        sha: sha.into(),
        files,
        gated: false,
    }
}
