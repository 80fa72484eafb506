// Command funclen reports the length of every function and method in the
// production Go files below the given directories (test files and
// internal/tools left out): the median, the longest, and every function
// longer than -over lines. `make metrics` runs it; the redesign's notes quote
// it, so the figures can be rerun by anyone.
package main
