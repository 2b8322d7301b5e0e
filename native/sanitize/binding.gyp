# The native addon and the attach helper built with AddressSanitizer and UndefinedBehaviorSanitizer,
# into native/sanitize/build/Release (never over native/build/Release), for the CI's sanitizer
# lane (scripts/test.sh): `node-gyp rebuild --directory native/sanitize`. Same targets and sources
# as ../binding.gyp (included), plus the sanitizer flags for every target.
{
  "includes": ["../binding.gyp"],
  "target_defaults": {
    "cflags": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all", "-g"],
    "ldflags": ["-fsanitize=address,undefined"]
  }
}
