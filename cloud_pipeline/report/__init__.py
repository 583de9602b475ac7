"""The HTML report of a lake: gathered in Spark, drawn with matplotlib; imports storage and the core."""
