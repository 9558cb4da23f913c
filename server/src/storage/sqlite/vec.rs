//! sqlite-vec: registering the extension (the one `unsafe` block in Mnemo) and the
//! blob format of its vectors, which every query that binds or reads a vector shares.

use std::sync::Once;

/// Makes `vec0` and the `vec_*` functions available on every SQLite connection this
/// process opens from now on. Idempotent and cheap after the first call.
pub(super) fn register() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        #[allow(unsafe_code)]
        // SAFETY: `sqlite3_vec_init` is the extension's entry point, compiled into this
        // binary by the sqlite-vec crate against the same SQLite that rusqlite bundles.
        // Its real signature is SQLite's extension-init signature; the crate declares
        // it as `fn()`, so the transmute only restores the type SQLite expects.
        // `sqlite3_auto_extension` is thread-safe, and `Once` calls it a single time.
        unsafe {
            rusqlite::ffi::sqlite3_auto_extension(Some(std::mem::transmute::<
                *const (),
                unsafe extern "C" fn(
                    *mut rusqlite::ffi::sqlite3,
                    *mut *mut std::os::raw::c_char,
                    *const rusqlite::ffi::sqlite3_api_routines,
                ) -> std::os::raw::c_int,
            >(
                sqlite_vec::sqlite3_vec_init as *const (),
            )));
        }
    });
}

/// sqlite-vec reads a float vector as its little-endian bytes.
pub(super) fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian f32s of a vec0 blob.
pub(super) fn floats(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
