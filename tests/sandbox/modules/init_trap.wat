;; Malicious: caxton_init divides by zero.
(module
  (memory (export "memory") 1)
  (func (export "caxton_init") (drop (i32.div_u (i32.const 1) (i32.const 0))))
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "caxton_handle") (param i32 i32) (result i64) (i64.const 0)))
