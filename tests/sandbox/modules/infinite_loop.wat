;; Malicious: caxton_handle never returns (stopped by fuel, or by the wall clock).
(module
  (memory (export "memory") 1)
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "caxton_handle") (param i32 i32) (result i64)
    (loop $forever (br $forever))
    (i64.const 0)))
