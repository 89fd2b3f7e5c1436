;; Malicious: the reply pointer lies outside linear memory.
(module
  (memory (export "memory") 1)
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "caxton_handle") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 0xFFFF0000) (i64.const 32)) (i64.const 100))))
