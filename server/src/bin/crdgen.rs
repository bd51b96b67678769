//! Prints the platform's CRDs: `cargo run -p server --bin crdgen > deploy/crds/dedicatednode.yaml`.
fn main() {
    print!("{}", server::crd::crd_yaml());
}
