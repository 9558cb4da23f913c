//! Natural time phrases ("yesterday", "last week") as time ranges. Being written.
