;; Asks WASI to open a file relative to fd 3 (the first preopen, if any) and
;; replies {"errno":"NN"} with the result code ("08" = EBADF: no such descriptor).
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "/etc/passwd")
  (data (i32.const 64) "{\"errno\":\"")
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "caxton_handle") (param i32 i32) (result i64)
    (local $errno i32)
    (local.set $errno
      (call $path_open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 11) (i32.const 0)
                       (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 32)))
    ;; errno < 100: two digits, then "}
    (i32.store8 (i32.const 74) (i32.add (i32.const 48) (i32.div_u (local.get $errno) (i32.const 10))))
    (i32.store8 (i32.const 75) (i32.add (i32.const 48) (i32.rem_u (local.get $errno) (i32.const 10))))
    (i32.store8 (i32.const 76) (i32.const 34))
    (i32.store8 (i32.const 77) (i32.const 125))
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 14))))
