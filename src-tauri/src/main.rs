// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    tunesmith_malloc::keep_freed_memory();
    tunesmith_engine::device::configure_cpu_pool();
    tunesmith_desktop::run()
}
