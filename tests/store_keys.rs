use outpost::store::s3::valid_key;

#[test]
fn accepts_ordinary_keys() {
    for key in ["a", "uploads/2024/05/report.pdf", "dir/some file ü.txt", "a.b/c..d/.hidden", "x-y_z~1"] {
        assert!(valid_key(key), "{key:?} should be valid");
    }
}

#[test]
fn refuses_dangerous_keys() {
    let long = "a".repeat(1025);
    for key in [
        "",
        "/abs",
        "..",
        "../etc/passwd",
        "a/../b",
        "a/./b",
        ".",
        "a//b",
        "trailing/",
        "back\\slash",
        "nul\0byte",
        "new\nline",
        "del\u{7f}",
        long.as_str(),
    ] {
        assert!(!valid_key(key), "{key:?} should be refused");
    }
}
