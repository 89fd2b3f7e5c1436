;; Malicious: wants a host function Caxton does not provide.
(module
  (import "env" "system" (func $system (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "caxton_handle") (param i32 i32) (result i64)
    (drop (call $system (i32.const 0)))
    (i64.const 0)))
