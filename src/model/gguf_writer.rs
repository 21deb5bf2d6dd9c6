//! Writes GGUF files for tests (`gguf`, `gguf_model`): metadata and
//! tensors given as raw parts, laid out as llama.cpp does (32-byte alignment).

/// Writes GGUF files for tests: metadata and tensors given as raw parts.
pub struct Writer {
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    data: Vec<u8>,
    n_tensors: u64,
}

impl Writer {
    pub fn new() -> Self {
        Self { kv: Vec::new(), n_kv: 0, infos: Vec::new(), data: Vec::new(), n_tensors: 0 }
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    pub fn kv_raw(&mut self, key: &str, kind: u32, value: &[u8]) -> &mut Self {
        Self::string(&mut self.kv, key);
        self.kv.extend(kind.to_le_bytes());
        self.kv.extend(value);
        self.n_kv += 1;
        self
    }

    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.kv_raw(key, 4, &v.to_le_bytes())
    }

    pub fn kv_f32(&mut self, key: &str, v: f32) -> &mut Self {
        self.kv_raw(key, 6, &v.to_le_bytes())
    }

    pub fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        let mut bytes = Vec::new();
        Self::string(&mut bytes, v);
        self.kv_raw(key, 8, &bytes)
    }

    pub fn kv_strs(&mut self, key: &str, items: &[&str]) -> &mut Self {
        let mut bytes = 8u32.to_le_bytes().to_vec();
        bytes.extend((items.len() as u64).to_le_bytes());
        for s in items {
            Self::string(&mut bytes, s);
        }
        self.kv_raw(key, 9, &bytes)
    }

    pub fn kv_i32s(&mut self, key: &str, items: &[i32]) -> &mut Self {
        let mut bytes = 5u32.to_le_bytes().to_vec();
        bytes.extend((items.len() as u64).to_le_bytes());
        items.iter().for_each(|i| bytes.extend(i.to_le_bytes()));
        self.kv_raw(key, 9, &bytes)
    }

    /// A tensor of ggml type `kind` with dims fastest first and its raw bytes.
    pub fn tensor(&mut self, name: &str, dims: &[u64], kind: u32, bytes: &[u8]) -> &mut Self {
        Self::string(&mut self.infos, name);
        self.infos.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| self.infos.extend(d.to_le_bytes()));
        self.infos.extend(kind.to_le_bytes());
        self.infos.extend((self.data.len() as u64).to_le_bytes());
        self.data.extend(bytes);
        self.data.resize(self.data.len().next_multiple_of(32), 0);
        self.n_tensors += 1;
        self
    }

    pub fn f32_tensor(&mut self, name: &str, dims: &[u64], values: &[f32]) -> &mut Self {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, 0, &bytes)
    }

    pub fn finish(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        out.extend(&self.infos);
        out.resize(out.len().next_multiple_of(32), 0);
        out.extend(&self.data);
        out
    }
}
