//! Writes the platform's CRDs: `cargo run -p server --bin crdgen -- deploy/crds` (one file a
//! CRD); without an argument, prints them all as one YAML stream.
fn main() {
    let files = server::crd::crd_files();
    match std::env::args().nth(1) {
        Some(dir) => {
            for (name, yaml) in files {
                let path = std::path::Path::new(&dir).join(name);
                if let Err(e) = std::fs::write(&path, yaml) {
                    eprintln!("cannot write {}: {e}", path.display());
                    std::process::exit(1);
                }
                println!("wrote {}", path.display());
            }
        }
        None => print!("{}", files.into_iter().map(|(_, yaml)| yaml).collect::<Vec<_>>().join("---\n")),
    }
}
