//! Compiles the site stylesheet: the Tailwind utility classes used anywhere in `app/src` are
//! turned into CSS by encre-css (no Node, no network), after the hand-written `style/base.css`.

use std::path::{Path, PathBuf};

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable app/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
    let app_src = root.join("app/src");
    let base = root.join("style/base.css");
    println!("cargo:rerun-if-changed={}", app_src.display());
    println!("cargo:rerun-if-changed={}", base.display());

    let mut files = Vec::new();
    rust_sources(&app_src, &mut files);
    files.sort();
    let sources: Vec<String> = files.iter().map(|f| std::fs::read_to_string(f).expect("readable source")).collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }

    let mut config = encre_css::Config::default();
    config.theme.dark_mode = encre_css::config::DarkMode::new_class(".dark");
    let utilities = encre_css::generate(sources.iter().map(String::as_str), &config);
    let css = format!("{}\n{}", std::fs::read_to_string(&base).expect("style/base.css"), utilities);

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("site.css"), &css).expect("write site.css");
    // A content hash for the ETag: FNV-1a is enough to tell versions apart.
    let hash = css.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    std::fs::write(out.join("site.css.etag"), format!("{hash:016x}")).expect("write etag");
}
