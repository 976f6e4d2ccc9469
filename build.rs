//! Embeds the studio page (`web/dist`, built by Vite and committed) into the
//! binary, each file with its gzip and brotli forms compressed once here,
//! so the server stays one binary and never compresses a page per request.

use std::io::Write;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dist = root.join("web").join("dist");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=web/dist");
    let mut found = Vec::new();
    files(&dist, &mut found);
    let mut table = String::from("pub static ASSETS: &[Asset] = &[\n");
    for (i, file) in found.iter().enumerate() {
        println!("cargo:rerun-if-changed={}", file.display());
        let raw = std::fs::read(file).unwrap();
        let rel = file
            .strip_prefix(&dist)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let gz_path = out.join(format!("asset-{i}.gz"));
        let br_path = out.join(format!("asset-{i}.br"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).unwrap();
        std::fs::write(&gz_path, gz.finish().unwrap()).unwrap();
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 11, 22);
            w.write_all(&raw).unwrap();
        }
        std::fs::write(&br_path, br).unwrap();
        let digest = {
            use sha2::Digest;
            let d = sha2::Sha256::digest(&raw);
            d.iter()
                .take(12)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        table.push_str(&format!(
            "    Asset {{ path: {path:?}, content_type: {ct:?}, etag: \"\\\"{digest}\\\"\", raw: include_bytes!({raw:?}), gzip: include_bytes!({gz:?}), brotli: include_bytes!({br:?}) }},\n",
            path = format!("/{rel}"),
            ct = content_type(file),
            raw = file.display().to_string(),
            gz = gz_path.display().to_string(),
            br = br_path.display().to_string(),
        ));
    }
    table.push_str("];\n");
    std::fs::write(out.join("studio_assets.rs"), table).unwrap();
}
